package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

var (
	errWriteTimeout = errors.New("sse write timed out")
)

func classifyWriteErr(err error) error {
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return errWriteTimeout
	}
	return err
}

// responseSink streams through net/http (HTTP/2), flushing every batch.
type responseSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (r *responseSink) write(b []byte) error {
	if err := r.rc.SetWriteDeadline(time.Now().Add(r.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := r.w.Write(b); err != nil {
		return classifyWriteErr(err)
	}
	if err := r.rc.Flush(); err != nil {
		return classifyWriteErr(err)
	}
	return nil
}
