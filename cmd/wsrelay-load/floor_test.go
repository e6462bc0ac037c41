package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play the floor server, which -mode floor
// starts by running its own executable with -mode floor-serve.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "-mode" && os.Args[2] == "floor-serve" {
		if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestFloorSmoke runs a short floor ladder, with the epoll readers and with
// goroutine readers: every frame the bare writer sent arrives once, in
// order, at every client.
func TestFloorSmoke(t *testing.T) {
	for _, readers := range []string{"epoll", "goroutines"} {
		t.Run(readers, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			args := []string{"-mode", "floor", "-steps", "5:50:1s", "-duration", "2s", "-settle", "500ms", "-json"}
			if readers == "goroutines" {
				args = append(args, "-go-readers")
			}
			var out, errOut strings.Builder
			err := run(ctx, args, &out, &errOut)
			checkSmokeStep(t, err, out.String(), errOut.String())
		})
	}
}

// TestRestFloor: the bare endpoint answers like /v1/quotes/{symbol} (the
// same headers, a body of about the given size) and stops when told.
func TestRestFloor(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-mode", "rest-floor", "-listen", "127.0.0.1:0", "-size", "300", "-duration", "1m"}, io.Discard, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("no URL in %q", line)
	}
	url := strings.Fields(line[i:])[0] + "v1/quotes/LOAD"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) < 300 || len(body) > 450 || !json.Valid(body) {
		t.Fatalf("%d, %d bytes: %s", resp.StatusCode, len(body), body)
	}
	for _, h := range []string{"Etag", "Age", "Last-Modified", "Cache-Control", "Content-Type", "Vary"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("rest-floor did not stop")
	}
	if err := run(context.Background(), []string{"-mode", "rest-floor", "-listen", "10.1.2.3:80"}, io.Discard, io.Discard); err == nil {
		t.Fatal("a non-loopback -listen was accepted")
	}
}
