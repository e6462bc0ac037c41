package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/tracing"
	"github.com/chromedp/chromedp"
)

// traceEvent is one Chrome trace event (the JSON trace format).
type traceEvent struct {
	Name string  `json:"name"`
	Ph   string  `json:"ph"`
	Ts   float64 `json:"ts"`  // µs
	Dur  float64 `json:"dur"` // µs, for "X" events
	Pid  int     `json:"pid"`
	Tid  int     `json:"tid"`
	Args struct {
		Name string `json:"name"` // thread_name metadata
	} `json:"args"`
}

// traceMainThread records a trace of d and returns the self time of each
// kind of work on the renderer's main thread, largest first: where the
// busy time goes (WSRELAY_BOARD_TRACE=1).
func (b *browser) traceMainThread(d time.Duration) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d+30*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (string, error) {
		data := cdp.Events(ctx, t, tracing.DataCollected)
		done := cdp.Events(ctx, t, tracing.TracingComplete)
		if _, err := cdp.Call(ctx, t, tracing.Start, tracing.StartParams{TraceConfig: &tracing.TraceConfig{
			IncludedCategories: []string{"devtools.timeline", "v8", "blink", "cc", "gpu", "toplevel", "loading", "disabled-by-default-devtools.timeline"},
		}}); err != nil {
			return "", err
		}
		time.Sleep(d)
		if _, err := cdp.Call(ctx, t, tracing.End, cdp.Empty{}); err != nil {
			return "", err
		}
		var events []traceEvent
		collected := make(chan error, 1)
		go func() {
			for ev, err := range data {
				if err != nil {
					collected <- err
					return
				}
				for _, v := range ev.Value {
					var e traceEvent
					if json.Unmarshal(v, &e) == nil {
						events = append(events, e)
					}
				}
			}
		}()
		for _, err := range done {
			if err != nil {
				return "", err
			}
			break
		}
		time.Sleep(200 * time.Millisecond) // the last dataCollected precede tracingComplete
		cancel()
		<-collected
		return summarize(events, d), nil
	})
	if err != nil {
		b.t.Fatalf("trace: %v", err)
	}
	return out
}

func summarize(events []traceEvent, d time.Duration) string {
	mainTid := map[[2]int]bool{}
	for _, e := range events {
		if e.Ph == "M" && e.Name == "thread_name" && e.Args.Name == "CrRendererMain" {
			mainTid[[2]int{e.Pid, e.Tid}] = true
		}
	}
	var xs []traceEvent
	for _, e := range events {
		if e.Ph == "X" && mainTid[[2]int{e.Pid, e.Tid}] {
			xs = append(xs, e)
		}
	}
	sort.Slice(xs, func(i, j int) bool {
		if xs[i].Ts != xs[j].Ts {
			return xs[i].Ts < xs[j].Ts
		}
		return xs[i].Dur > xs[j].Dur
	})
	self := map[string]float64{}
	var top float64
	type open struct {
		end      float64
		name     string
		children float64
		dur      float64
	}
	var stack []open
	pop := func() {
		o := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		self[o.name] += o.dur - o.children
		if len(stack) > 0 {
			stack[len(stack)-1].children += o.dur
		} else {
			top += o.dur
		}
	}
	for _, e := range xs {
		for len(stack) > 0 && stack[len(stack)-1].end <= e.Ts {
			pop()
		}
		stack = append(stack, open{end: e.Ts + e.Dur, name: e.Name, dur: e.Dur})
	}
	for len(stack) > 0 {
		pop()
	}
	names := make([]string, 0, len(self))
	for n := range self {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return self[names[i]] > self[names[j]] })
	var sb strings.Builder
	fmt.Fprintf(&sb, "main thread, top-level tasks %.0f ms in %s; self time by kind:", top/1000, d)
	for i, n := range names {
		if i == 15 {
			break
		}
		fmt.Fprintf(&sb, "\n  %7.1f ms  %s", self[n]/1000, n)
	}
	return sb.String()
}
