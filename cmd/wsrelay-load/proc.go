package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStat is what /proc tells about the relay process.
type procStat struct {
	cpuTicks uint64 // utime + stime, in clock ticks (100 per second on Linux)
	rssKiB   uint64
	syscw    uint64 // write syscalls
	ok       bool
}

const clkTck = 100

func readProc(pid int) procStat {
	if pid <= 0 {
		return procStat{}
	}
	var st procStat
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the parenthesised command name; utime and stime are
		// fields 14 and 15 of the whole line.
		if i := bytes.LastIndexByte(b, ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 13 {
				u, _ := strconv.ParseUint(f[11], 10, 64)
				s, _ := strconv.ParseUint(f[12], 10, 64)
				st.cpuTicks = u + s
				st.ok = true
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				st.rssKiB, _ = strconv.ParseUint(strings.Fields(v)[0], 10, 64)
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "syscw:"); ok {
				st.syscw, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	return st
}
