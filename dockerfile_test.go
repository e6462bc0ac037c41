package wsrelay

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

type instr struct {
	cmd   string   // lower case
	flags []string // --from=…, --interval=…
	args  []string
	json  bool // exec form
}

func parseDockerfile(t *testing.T) []instr {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []instr
	for _, n := range res.AST.Children {
		in := instr{cmd: strings.ToLower(n.Value), flags: n.Flags, json: n.Attributes["json"]}
		for a := n.Next; a != nil; a = a.Next {
			in.args = append(in.args, a.Value)
		}
		out = append(out, in)
	}
	return out
}

// TestDockerfile checks the image's required properties: multi-stage with
// base images as build args, a cached go mod download layer, a static
// trimmed build, CA certificates, a non-root user, port 8080, a HEALTHCHECK
// that runs the binary itself and an exec-form ENTRYPOINT.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t)
	var froms []instr
	args := map[string]bool{}
	for _, in := range ins {
		switch in.cmd {
		case "from":
			froms = append(froms, in)
		case "arg":
			if len(froms) == 0 {
				args[strings.SplitN(in.args[0], "=", 2)[0]] = true
			}
		case "run", "copy":
			for _, fl := range in.flags {
				if strings.HasPrefix(fl, "--mount") || strings.HasPrefix(fl, "--chmod") {
					t.Errorf("%s %s needs BuildKit; the classic builder must work", in.cmd, fl)
				}
			}
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got %d FROM", len(froms))
	}
	for _, f := range froms {
		base := strings.Trim(f.args[0], "${}")
		if !args[base] {
			t.Errorf("FROM %s: base image is not a build arg declared before the first FROM", f.args[0])
		}
	}
	// Builder stage: go.mod/go.sum copied and downloaded before the sources.
	idx := func(pred func(instr) bool) int { return slices.IndexFunc(ins, pred) }
	modCopy := idx(func(in instr) bool {
		return in.cmd == "copy" && slices.Contains(in.args, "go.mod") && slices.Contains(in.args, "go.sum")
	})
	download := idx(func(in instr) bool {
		return in.cmd == "run" && strings.Contains(strings.Join(in.args, " "), "go mod download")
	})
	srcCopy := idx(func(in instr) bool { return in.cmd == "copy" && len(in.args) == 2 && in.args[0] == "." })
	if modCopy < 0 || download < 0 || srcCopy < 0 || !(modCopy < download && download < srcCopy) {
		t.Errorf("want COPY go.mod go.sum, RUN go mod download, then COPY . . (got %d, %d, %d)", modCopy, download, srcCopy)
	}
	build := idx(func(in instr) bool {
		return in.cmd == "run" && strings.Contains(strings.Join(in.args, " "), "go build")
	})
	if build < 0 {
		t.Fatal("no go build")
	}
	b := strings.Join(ins[build].args, " ")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/wsrelay"} {
		if !strings.Contains(b, want) {
			t.Errorf("go build lacks %s: %s", want, b)
		}
	}
	// Runtime stage.
	last := slices.IndexFunc(ins, func(in instr) bool { return in.cmd == "from" && in.args[0] == froms[len(froms)-1].args[0] })
	final := ins[last:]
	has := func(cmd string, pred func(instr) bool) bool {
		return slices.ContainsFunc(final, func(in instr) bool { return in.cmd == cmd && pred(in) })
	}
	if !has("copy", func(in instr) bool {
		return slices.Contains(in.flags, "--from=build") && strings.Contains(strings.Join(in.args, " "), "ca-certificates")
	}) {
		t.Error("the runtime stage does not get CA certificates (wss:// needs them)")
	}
	if !has("copy", func(in instr) bool {
		return slices.Contains(in.flags, "--from=build") && slices.Contains(in.args, "/wsrelay")
	}) {
		t.Error("the binary is not copied to /wsrelay")
	}
	if !has("user", func(in instr) bool {
		u := strings.Split(in.args[0], ":")[0]
		return u != "root" && u != "0" && u != ""
	}) {
		t.Error("no non-root USER")
	}
	if !has("expose", func(in instr) bool { return slices.Contains(in.args, "8080") }) {
		t.Error("no EXPOSE 8080")
	}
	if !has("healthcheck", func(in instr) bool {
		return len(in.args) >= 3 && in.args[0] == "CMD" && in.args[1] == "/wsrelay" && in.args[2] == "healthcheck"
	}) {
		t.Error(`want HEALTHCHECK CMD ["/wsrelay", "healthcheck"] (the image has no curl)`)
	}
	if !has("entrypoint", func(in instr) bool { return in.json && len(in.args) == 1 && in.args[0] == "/wsrelay" }) {
		t.Error(`want ENTRYPOINT ["/wsrelay"]`)
	}
}
