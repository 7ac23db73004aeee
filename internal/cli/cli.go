// Package cli is the seqrelay command line: one binary that runs the
// in-process dispatcher, appends events, shows a demo, and (with Temporal)
// runs workers and starts and queries dispatcher workflows.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/seqrelay/seqrelay/workflows"
)

// IO is where a command reads and writes.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, io IO) error
}

func commands() []command {
	return []command{
		{"run", "deliver events from the event log to NATS until interrupted (the main job)", runCmd},
		{"append", "append events to the event log (JSON lines on stdin, or one from flags)", appendCmd},
		{"demo", "append events, deliver them to an embedded NATS, read them back and verify", demoCmd},
		{"prune", "delete the events every dispatcher has delivered (at or below the lowest checkpoint)", pruneCmd},
		{"dev", "run a dev Temporal server, an embedded NATS, the SQLite store and a worker, in one process", devCmd},
		{"worker", "run a Temporal worker for dispatcher workflows", workerCmd},
		{"start", "start a dispatcher workflow on Temporal", startCmd},
		{"state", "print the state of a dispatcher workflow", stateCmd},
		{"pause", "pause a dispatcher workflow (the running batch finishes)", signalCmd(workflows.SignalPause, "Pauses a dispatcher workflow: no new batch starts until resume.")},
		{"resume", "resume a paused dispatcher workflow, or retry a halted one", signalCmd(workflows.SignalResume, "Resumes a paused dispatcher workflow, or retries one halted on a poison event after a fix.")},
		{"stop", "stop a dispatcher workflow: checkpoint, then complete", signalCmd(workflows.SignalStop, "Stops a dispatcher workflow: it finishes its batch, stores the checkpoint and completes.")},
	}
}

// Main runs the command line and returns the exit code: 0 on success, 1 on
// failure, 2 on bad usage.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	io := IO{In: stdin, Out: stdout, Err: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], io)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(*usageError)):
			fmt.Fprintf(stderr, "seqrelay %s: %v\n", c.name, err)
			fmt.Fprintf(stderr, "run 'seqrelay %s -h' for its flags\n", c.name)
			return 2
		default:
			fmt.Fprintf(stderr, "seqrelay %s: %v\n", c.name, oneLine(err))
			return 1
		}
	}
	fmt.Fprintf(stderr, "seqrelay: unknown command %q; run 'seqrelay help' for the commands\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "seqrelay delivers events from an event log to NATS: in order, each once, through crashes.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: seqrelay <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'seqrelay <command> -h' for a command's flags.")
}

// usageError is a mistake in the command line (exit code 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// parse parses flags; a flag error becomes a usageError. Positional
// arguments are refused.
func parse(fs *flag.FlagSet, args []string) error {
	fs.Init(fs.Name(), flag.ContinueOnError)
	var msg strings.Builder
	fs.SetOutput(&msg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(nil)
			return err
		}
		return &usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	return nil
}

// parseChecked parses fs, builds its logger (see logFlags) and runs the
// checks, stopping at the first error.
func parseChecked(fs *flag.FlagSet, args []string, logger func(io.Writer) (*slog.Logger, error), w io.Writer, checks ...func() error) (*slog.Logger, error) {
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	lg, err := logger(w)
	if err != nil {
		return nil, err
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return nil, err
		}
	}
	return lg, nil
}

// newFlagSet returns a flag set whose -h output goes to io.Out.
func newFlagSet(name string, io IO, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("seqrelay "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(io.Out, "Usage: seqrelay %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.SetOutput(io.Out)
		fs.PrintDefaults()
	}
	return fs
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// logFlags adds --log-level and returns a function building the logger.
func logFlags(fs *flag.FlagSet, def string) func(w io.Writer) (*slog.Logger, error) {
	level := fs.String("log-level", def, "log level: debug, info, warn or error")
	format := fs.String("log-format", "text", "log format: text or json")
	return func(w io.Writer) (*slog.Logger, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(*level)); err != nil {
			return nil, usagef("--log-level %q: use debug, info, warn or error", *level)
		}
		opts := &slog.HandlerOptions{Level: l}
		switch *format {
		case "text":
			return slog.New(slog.NewTextHandler(w, opts)), nil
		case "json":
			return slog.New(slog.NewJSONHandler(w, opts)), nil
		}
		return nil, usagef("--log-format %q: use text or json", *format)
	}
}
