package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Parsing helpers of the config: error messages that name the key, and
// durations, sizes and ranges.

var lineRE = regexp.MustCompile(`line (\d+): `)

// describeYAMLError turns the decoder's (possibly multi-line) error into
// one line that names the offending key.
func describeYAMLError(src []byte, err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	first, _, _ := strings.Cut(strings.TrimSpace(msg), "\n")
	keys := keysByLine(src)
	if m := lineRE.FindStringSubmatch(first); m != nil {
		line, _ := strconv.Atoi(m[1])
		rest := strings.TrimPrefix(first, m[0])
		if f, ok := strings.CutPrefix(rest, "field "); ok {
			name, _, _ := strings.Cut(f, " ")
			rest = fmt.Sprintf("unknown key %q", name)
		}
		if k := keys[line]; k != "" {
			return fmt.Sprintf("%s (line %d): %s", k, line, rest)
		}
		return fmt.Sprintf("line %d: %s", line, rest)
	}
	return first
}

// keysByLine maps each line of src to the dotted path of the key there.
func keysByLine(src []byte) map[int]string {
	out := map[int]string{}
	var root yaml.Node
	if yaml.Unmarshal(src, &root) != nil {
		return out
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				out[k.Line] = p
				if v := n.Content[i+1]; v.Line != k.Line || v.Kind != yaml.ScalarNode {
					walk(v, p)
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if _, ok := out[c.Line]; !ok {
					out[c.Line] = p
				}
				walk(c, p)
			}
		}
	}
	walk(&root, "")
	return out
}

// parseDuration parses a config duration; "" is zero (the default).
func parseDuration(key, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, usagef("%s: %q is not a duration (e.g. 250ms, 30s, 1m)", key, v)
	}
	if d <= 0 {
		return 0, usagef("%s: %s must be positive", key, v)
	}
	return d, nil
}

var sizeRE = regexp.MustCompile(`^\s*(\d+)\s*([KMG]i?B|B)?\s*$`)

// parseSize parses 1048576, 512KiB, 1MiB, 1MB; "" keeps def.
func parseSize(key, v string, def int64) (int64, error) {
	if v == "" {
		return def, nil
	}
	m := sizeRE.FindStringSubmatch(v)
	if m == nil {
		return 0, usagef("%s: %q is not a size (e.g. 1MiB, 512KiB, 65536)", key, v)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > 1<<40 {
		return 0, usagef("%s: %q is too large", key, v)
	}
	mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m[2]]
	return n * mult, nil
}

// intIn reads an optional integer in lo..hi; absent is zero (the default).
func intIn(key string, p *int, lo, hi int) (int, error) {
	if p == nil {
		return 0, nil
	}
	if *p < lo || *p > hi {
		return 0, usagef("%s: %d is outside %d..%d", key, *p, lo, hi)
	}
	return *p, nil
}
