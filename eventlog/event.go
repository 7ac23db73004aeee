// Package eventlog defines the event log that seqrelay delivers from: the
// Event type, the Log interface every store implements, an in-memory store for
// tests and embedding, and the Watcher that binds a log to one dispatcher.
//
// Stores live in sub-packages: eventlog/sqlite (the embedded default, a file
// several processes can share) and eventlog/postgres (a transactional outbox).
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Event is one entry of the log. Seq is assigned by the log on append: it is
// strictly increasing and never reused.
type Event struct {
	// Seq is the event's sequence number, assigned on append (ignored there).
	Seq uint64
	// Type names what happened, such as "order.created".
	Type string
	// Payload is the event's body, delivered as the message data.
	Payload []byte
	// Metadata travels as message headers. Optional.
	Metadata map[string]string
	// Time is when the event was appended (set by the log).
	Time time.Time
}

// Log is an append-only sequence of events with a checkpoint per reader.
//
// Implementations are safe for concurrent use.
type Log interface {
	// Append adds events in order and returns the sequence numbers assigned.
	Append(ctx context.Context, events ...Event) ([]uint64, error)
	// Read returns up to limit events with Seq > after, in sequence order.
	Read(ctx context.Context, after uint64, limit int) ([]Event, error)
	// Appended returns a channel that is closed when events are next appended
	// through this Log value (or, where the store can tell, by anyone). Get
	// the channel before reading, so that an append between the read and the
	// wait is not missed. Appends by other processes are seen by polling.
	Appended() <-chan struct{}
	// Head returns the highest sequence number in the log (0 when empty).
	Head(ctx context.Context) (uint64, error)
	// LastCheckpoint returns the checkpoint stored for reader id (0 if none).
	LastCheckpoint(ctx context.Context, id string) (uint64, error)
	// Checkpoint records that reader id is done with every event <= seq.
	// Checkpoints never move backwards: a lower seq than the stored one is
	// ignored, so a late writer cannot undo progress.
	Checkpoint(ctx context.Context, id string, seq uint64) error
	// Close releases the log's resources.
	Close() error
}

// Errors that stores return; match them with errors.Is.
var (
	// ErrInvalidEvent marks an event that cannot be appended.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrClosed is returned by a Log used after Close.
	ErrClosed = errors.New("event log is closed")
	// ErrInvalidReaderID marks an empty or oversized checkpoint reader ID.
	ErrInvalidReaderID = errors.New("invalid reader ID")
)

// MaxTypeLen bounds Event.Type, so that it fits a NATS subject token list.
const MaxTypeLen = 256

// Validate reports whether e can be appended: its Type must be non-empty
// valid UTF-8 of at most MaxTypeLen bytes, and metadata keys non-empty.
func (e Event) Validate() error {
	switch {
	case e.Type == "":
		return fmt.Errorf("%w: type is empty: give every event a type such as \"order.created\"", ErrInvalidEvent)
	case len(e.Type) > MaxTypeLen:
		return fmt.Errorf("%w: type is %d bytes, more than %d", ErrInvalidEvent, len(e.Type), MaxTypeLen)
	case !utf8.ValidString(e.Type):
		return fmt.Errorf("%w: type %q is not valid UTF-8", ErrInvalidEvent, e.Type)
	}
	for k := range e.Metadata {
		if k == "" {
			return fmt.Errorf("%w: metadata has an empty key", ErrInvalidEvent)
		}
	}
	return nil
}

// ValidateAll validates every event, naming the position of the first bad one.
func ValidateAll(events []Event) error {
	for i, e := range events {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("event %d of %d: %w", i+1, len(events), err)
		}
	}
	return nil
}

// ValidateReaderID checks a checkpoint reader (dispatcher) ID.
func ValidateReaderID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: it is empty", ErrInvalidReaderID)
	}
	if len(id) > 200 {
		return fmt.Errorf("%w: %d bytes, more than 200", ErrInvalidReaderID, len(id))
	}
	return nil
}
