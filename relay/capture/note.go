package capture

import "fmt"

// Confidence says how sure an inference is.
type Confidence uint8

// The levels of confidence of an inferred key.
const (
	// High: read off the capture mechanically, or checked against it.
	High Confidence = iota + 1
	// Medium: inferred from a pattern that usually holds; worth a look.
	Medium
	// Low: a guess; check it before relying on it.
	Low
)

func (c Confidence) String() string {
	switch c {
	case High:
		return "high"
	case Medium:
		return "medium"
	case Low:
		return "GUESS"
	}
	return "unknown"
}

// Note is the evidence for one inferred key: how sure, and why.
type Note struct {
	Conf Confidence
	Why  string
}

func (n Note) String() string {
	if n.Conf == 0 {
		return n.Why
	}
	return n.Conf.String() + ": " + n.Why
}

func note(c Confidence, format string, args ...any) Note {
	return Note{Conf: c, Why: fmt.Sprintf(format, args...)}
}

// lower returns the lower of two confidences.
func lower(a, b Confidence) Confidence { return max(a, b) }

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
