package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/seqrelay/seqrelay/eventlog"
)

// appendLine is one line of `seqrelay append` input.
type appendLine struct {
	Type     string            `json:"type"`
	Payload  json.RawMessage   `json:"payload"`
	Metadata map[string]string `json:"metadata"`
}

func appendCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlagSet("append", io, "Appends events to the event log and prints the sequence numbers assigned.\n"+
		"Reads JSON lines from stdin, each {\"type\": \"order.created\", \"payload\": <any JSON>, \"metadata\": {\"k\": \"v\"}},\n"+
		"or appends one event given by --type (and --payload, --meta).\n"+
		"All events of one call are appended in one transaction: all or none.")
	sf := addStoreFlags(fs)
	typ := fs.String("type", "", "type of the one event to append (instead of reading stdin)")
	payload := fs.String("payload", "null", "JSON payload of the one event")
	var meta metaFlag
	fs.Var(&meta, "meta", "metadata key=value of the one event (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}

	var events []eventlog.Event
	if *typ != "" {
		if !json.Valid([]byte(*payload)) {
			return usagef("--payload is not valid JSON: %q (quote strings: --payload '\"text\"')", *payload)
		}
		events = []eventlog.Event{{Type: *typ, Payload: compact([]byte(*payload)), Metadata: meta.m}}
		if err := events[0].Validate(); err != nil {
			return usagef("--type: %v", err)
		}
	} else {
		if len(meta.m) > 0 || *payload != "null" {
			return usagef("--payload and --meta need --type")
		}
		var err error
		if events, err = readLines(io.In); err != nil {
			return err
		}
		if len(events) == 0 {
			return errors.New("no events on stdin: give JSON lines, or --type for one event")
		}
	}
	log, _, err := sf.open(ctx, true)
	if err != nil {
		return err
	}
	defer log.Close()
	seqs, err := log.Append(ctx, events...)
	if err != nil {
		return err
	}
	if len(seqs) == 1 {
		fmt.Fprintf(io.Out, "appended event %d\n", seqs[0])
	} else {
		fmt.Fprintf(io.Out, "appended %d events: %d-%d\n", len(seqs), seqs[0], seqs[len(seqs)-1])
	}
	return nil
}

// readLines reads and validates every line before anything is appended.
func readLines(r io.Reader) ([]eventlog.Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var events []eventlog.Event
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var l appendLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, fmt.Errorf("line %d: not an event: %v (want {\"type\": \"...\", \"payload\": <JSON>, \"metadata\": {...}}); nothing was appended", n, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("line %d: more than one JSON value; put one event per line; nothing was appended", n)
		}
		if len(l.Payload) == 0 {
			l.Payload = json.RawMessage("null")
		}
		e := eventlog.Event{Type: l.Type, Payload: compact(l.Payload), Metadata: l.Metadata}
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("line %d: %v; nothing was appended", n, err)
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read stdin: %w; nothing was appended", err)
	}
	return events, nil
}

func compact(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// metaFlag collects key=value pairs.
type metaFlag struct{ m map[string]string }

func (f *metaFlag) String() string { return "" }

func (f *metaFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want key=value", v)
	}
	if f.m == nil {
		f.m = map[string]string{}
	}
	f.m[k] = val
	return nil
}
