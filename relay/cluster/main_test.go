package cluster_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// The process tests run real wsrelay binaries (SIGKILL and SIGSTOP need
// real processes), built once on first use and removed after the run.
var bin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func wsrelayBinary(t *testing.T) string {
	t.Helper()
	bin.once.Do(func() {
		bin.dir, bin.err = os.MkdirTemp("", "wsrelay-bin-")
		if bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "wsrelay")
		out, err := exec.Command("go", "build", "-o", bin.path, "github.com/wsrelay/wsrelay/cmd/wsrelay").CombinedOutput()
		if err != nil {
			bin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if bin.err != nil {
		t.Fatal(bin.err)
	}
	return bin.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
