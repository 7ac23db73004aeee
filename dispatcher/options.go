package dispatcher

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	"github.com/seqrelay/seqrelay/eventlog"
)

// PoisonPolicy says what happens to a poison event: one the MessageCreator
// cannot turn into a message, or whose message the target refuses (larger
// than the server's max payload, a subject no stream takes).
type PoisonPolicy string

const (
	// PoisonStop halts delivery at the poison event with an error naming
	// it. Nothing after it is delivered until it is fixed; delivery then
	// resumes at exactly that event.
	PoisonStop PoisonPolicy = "stop"
	// PoisonDeadLetter publishes the raw event and the error to the dead-
	// letter subject, in sequence order with the other messages, counts
	// it, and carries on.
	PoisonDeadLetter PoisonPolicy = "dead-letter"
)

// ParsePoisonPolicy reads a policy name.
func ParsePoisonPolicy(s string) (PoisonPolicy, error) {
	switch p := PoisonPolicy(s); p {
	case PoisonStop, PoisonDeadLetter:
		return p, nil
	case "":
		return PoisonStop, nil
	}
	return "", fmt.Errorf("unknown poison policy %q: use %q or %q", s, PoisonStop, PoisonDeadLetter)
}

// Defaults of the options.
const (
	DefaultBatchSize         = 512
	DefaultMaxInFlight       = 4096
	DefaultDeadLetterSubject = "seqrelay.deadletter"
)

type options struct {
	logger      *slog.Logger
	batchSize   int
	maxInFlight int
	poison      PoisonPolicy
	deadLetter  string
	writer      string
}

func defaultOptions() options {
	return options{
		logger:      slog.Default(),
		batchSize:   DefaultBatchSize,
		maxInFlight: DefaultMaxInFlight,
		poison:      PoisonStop,
		deadLetter:  DefaultDeadLetterSubject,
		writer:      randomWriterID(),
	}
}

// randomWriterID returns 16 random hex digits.
func randomWriterID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (o *options) validate() error {
	switch {
	case o.logger == nil:
		return fmt.Errorf("%w: logger", ErrNilDependency)
	case o.batchSize < 1:
		return fmt.Errorf("batch size %d: must be at least 1", o.batchSize)
	case o.maxInFlight < 1:
		return fmt.Errorf("max in flight %d: must be at least 1", o.maxInFlight)
	}
	if _, err := ParsePoisonPolicy(string(o.poison)); err != nil {
		return err
	}
	if err := ValidateSubject(o.deadLetter); err != nil {
		return fmt.Errorf("dead-letter subject: %w", err)
	}
	if o.writer == "" || strings.ContainsAny(o.writer, "\r\n") {
		return fmt.Errorf("writer ID %q: must be non-empty, without line breaks", o.writer)
	}
	return nil
}

// Option tunes a Dispatcher or a Relay beyond Config.
type Option func(*options)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithBatchSize sets how many events one read of the log returns at most
// (default 512).
func WithBatchSize(n int) Option { return func(o *options) { o.batchSize = n } }

// WithMaxInFlight bounds the messages published but not yet acknowledged
// (default 4096). When the window is full the dispatcher waits for acks.
func WithMaxInFlight(n int) Option { return func(o *options) { o.maxInFlight = n } }

// WithWriterID names this dispatcher instance in the KeyWriter header of
// its messages (default: a random ID per Relay). When a publish is refused
// because the stream changed under it, a Relay whose stream's newest message
// is another writer's halts with ErrFenced. Runs that may overlap but are
// one logical dispatcher (the attempts of one Temporal workflow) share an ID.
func WithWriterID(w string) Option { return func(o *options) { o.writer = w } }

// WithPoisonPolicy sets what happens to a poison event (default PoisonStop).
func WithPoisonPolicy(p PoisonPolicy) Option { return func(o *options) { o.poison = p } }

// WithDeadLetterSubject sets the subject prefix of dead letters (default
// "seqrelay.deadletter"); a dead letter of type T goes to prefix + "." +
// T when T is a valid subject, else to the prefix alone. The target stream
// must take it, so that dead letters keep their place in sequence order.
func WithDeadLetterSubject(s string) Option { return func(o *options) { o.deadLetter = s } }

// deadLetterMessage is the message that stands in for poison event e.
func (o *options) deadLetterMessage(e eventlog.Event, cause error) *deadLetter {
	subject := o.deadLetter
	if ValidateSubject(e.Type) == nil {
		subject += "." + e.Type
	}
	return &deadLetter{subject: subject, event: e, cause: cause}
}
