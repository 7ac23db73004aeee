package crashtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	// The binary is built in a child process, so go test would not see its
	// sources: importing the command line makes a change to it, or to
	// anything it uses, invalidate a cached result of this package.
	_ "github.com/seqrelay/seqrelay/internal/cli"
)

// built is the seqrelay binary, built once per test binary.
var built struct {
	once sync.Once
	dir  string // removed by TestMain
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// seqrelayBinary builds ./cmd/seqrelay from the module root, once, with
// the extra flags of cfg, and returns its path.
func seqrelayBinary(t *testing.T, cfg config) string {
	t.Helper()
	built.once.Do(func() {
		start := time.Now()
		built.bin, built.err = build(cfg.buildFlags)
		if built.err == nil {
			t.Logf("built %s in %s (flags %q)", built.bin, time.Since(start).Round(time.Millisecond), cfg.buildFlags)
		}
	})
	if built.err != nil {
		t.Fatalf("build the seqrelay binary: %v", built.err)
	}
	return built.bin
}

func build(flags []string) (string, error) {
	goBin, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
	if err != nil {
		return "", fmt.Errorf("find the go command: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root (go list -m): %w", err)
	}
	root := strings.TrimSpace(string(out))
	// Read by the test process so that go test's cache notices a change.
	if _, err := os.ReadFile(filepath.Join(root, "cmd", "seqrelay", "main.go")); err != nil {
		return "", fmt.Errorf("the seqrelay command's source: %w", err)
	}
	built.dir, err = os.MkdirTemp("", "seqrelay-crashtest-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(built.dir, "seqrelay")
	args := append(append([]string{"build"}, flags...), "-o", bin, "./cmd/seqrelay")
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), root, err, out)
	}
	return bin, nil
}
