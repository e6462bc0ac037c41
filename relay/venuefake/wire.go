package venuefake

import (
	"encoding/json"
	"slices"
	"strconv"
)

// marshal encodes a frame; the values the fakes marshal cannot fail.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// uintField reads an unsigned integer field, written as a JSON number or
// a string holding one.
func uintField(m map[string]json.RawMessage, key string) (uint64, bool) {
	raw, ok := m[key]
	if !ok {
		return 0, false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		n, err := strconv.ParseUint(s, 10, 64)
		return n, err == nil
	}
	n, err := strconv.ParseUint(string(raw), 10, 64)
	return n, err == nil
}

func contains(list []string, v string) bool { return slices.Contains(list, v) }

func remove(list []string, v string) []string {
	return slices.DeleteFunc(list, func(s string) bool { return s == v })
}

// firstOf returns data's first element when data is a JSON array (a
// preset that extracts a list of trades), else data itself.
func firstOf(data []byte) []byte {
	var list []json.RawMessage
	if json.Unmarshal(data, &list) == nil && len(list) > 0 {
		return list[0]
	}
	return data
}
