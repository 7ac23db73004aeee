package dispatcher

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/seqrelay/seqrelay/eventlog"
)

// EventReader reads the event log in sequence order.
type EventReader interface {
	// Read returns up to limit events with Seq > after, in order.
	Read(ctx context.Context, after uint64, limit int) ([]eventlog.Event, error)
	// Appended returns a channel closed at the next append the log sees.
	Appended() <-chan struct{}
}

// Watcher is the dispatcher's source of events and the keeper of its
// checkpoint; eventlog.Watcher implements it over any event log.
type Watcher interface {
	EventReader
	// ID names the dispatcher: its checkpoint and the message IDs it
	// publishes derive from it.
	ID() string
	// LastCheckpoint returns the stored checkpoint (0 if none).
	LastCheckpoint(ctx context.Context) (uint64, error)
	// Checkpoint stores seq as the checkpoint.
	Checkpoint(ctx context.Context, seq uint64) error
}

// MessageCreator decides how an event becomes a NATS message: its subject,
// data and headers. It returns a nil message (and nil error) to skip the
// event. An error makes the event a poison event. The dispatcher adds the
// KeySeqNum and Nats-Msg-Id headers.
type MessageCreator interface {
	CreateMessage(event eventlog.Event) (*nats.Msg, error)
}

// MessageCreatorFunc adapts a function to MessageCreator.
type MessageCreatorFunc func(event eventlog.Event) (*nats.Msg, error)

// CreateMessage calls f.
func (f MessageCreatorFunc) CreateMessage(event eventlog.Event) (*nats.Msg, error) { return f(event) }

// Publisher opens publishing sessions on the target (a JetStream stream, or
// core NATS); package publish implements it.
type Publisher interface {
	// Begin opens a session. It fails when the target cannot be reached.
	Begin(ctx context.Context) (Session, error)
}

// Session is one run of ordered, asynchronous publishing. Results of a
// session never leak into another: after a failure the dispatcher closes the
// session and begins a new one.
type Session interface {
	// Tail reports the newest event the target already holds, found when
	// the session began.
	Tail() Tail
	// Publish sends msg, the message of event seq, without waiting for its
	// acknowledgement. Calls are in increasing seq order. The caller bounds
	// the number in flight.
	Publish(seq uint64, msg *nats.Msg) error
	// Acks delivers one Ack per published message, in the order the server
	// answered. A failure of the whole session (a lost connection) arrives as
	// an Ack with Seq 0 and an error.
	Acks() <-chan Ack
	// Close ends the session; acknowledgements still in flight are dropped.
	Close() error
}

// Tail describes the newest message a target holds.
type Tail struct {
	// Known is false when the target cannot say (core NATS): delivery then
	// resumes after the checkpoint.
	Known bool
	// Seq is the KeySeqNum of the newest message, 0 when the target is empty.
	Seq uint64
	// MsgID is that message's Nats-Msg-Id.
	MsgID string
	// Writer is that message's KeyWriter header: the instance that wrote it.
	Writer string
}

// Ack is the server's answer to one published message.
type Ack struct {
	// Seq is the event's sequence number (0 for a session failure).
	Seq uint64
	// Err is nil when the server stored the message.
	Err error
	// Duplicate is true when the server already held the message.
	Duplicate bool
}
