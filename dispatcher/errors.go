package dispatcher

import (
	"errors"
	"fmt"
)

// ErrDispatcher is the error the dispatcher returns: the operation that
// failed and why. Match its cause with errors.Is or errors.As.
type ErrDispatcher struct {
	// Op names what the dispatcher was doing: "new", "start", "stop",
	// "publish", "read", "checkpoint", "recover".
	Op string
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *ErrDispatcher) Error() string {
	if e.Err == nil {
		return "dispatcher: " + e.Op + " failed"
	}
	return "dispatcher: " + e.Op + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *ErrDispatcher) Unwrap() error { return e.Err }

func opError(op string, err error) error {
	if err == nil {
		return nil
	}
	return &ErrDispatcher{Op: op, Err: err}
}

// Sentinel errors; match them with errors.Is.
var (
	// ErrInvalidConfig marks a Config that Validate rejects.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrNilDependency marks a nil publisher, watcher or message creator.
	ErrNilDependency = errors.New("nil dependency")
	// ErrAlreadyRunning is returned by Start on a running dispatcher.
	ErrAlreadyRunning = errors.New("dispatcher is already running: call Stop before starting it again")
	// ErrStalled marks a publish that was not acknowledged within StallTimeout.
	ErrStalled = errors.New("publish stalled")
	// ErrOutOfOrder marks an acknowledgement that did not arrive in publish order.
	ErrOutOfOrder = errors.New("acknowledgement out of order")
	// ErrPoisonEvent marks an event that cannot be turned into a message
	// that the target accepts.
	ErrPoisonEvent = errors.New("poison event")
	// ErrRejected marks a message the target refuses for what it is (too
	// large, a subject no stream takes); sending it again cannot succeed.
	// Publishers wrap such refusals with it; the dispatcher applies the
	// poison policy to the event.
	ErrRejected = errors.New("message rejected by the target")
	// ErrConflict marks a publish the target refused because its newest
	// message is not the one this session published last: another writer
	// published in between, or an earlier message of the session failed.
	// Publishers wrap such refusals with it.
	ErrConflict = errors.New("stream changed under this publisher")
	// ErrFenced halts a dispatcher that lost its stream to another writer
	// with the same dispatcher ID: two dispatchers were started on one log
	// and one stream, and this one published second.
	ErrFenced = errors.New("fenced off by another writer")
	// ErrForeignTarget marks a target whose newest message was not written by
	// this dispatcher, so resuming from it could skip or repeat events.
	ErrForeignTarget = errors.New("target holds messages of another writer")
)

// PoisonError names the event that cannot be delivered. It matches
// ErrPoisonEvent.
type PoisonError struct {
	Seq  uint64
	Type string
	Err  error
}

// Error implements error.
func (e *PoisonError) Error() string {
	return fmt.Sprintf("event %d (type %q) cannot be delivered: %v; fix the event or the message creator, then restart: delivery resumes at event %d", e.Seq, e.Type, e.Err, e.Seq)
}

// Unwrap returns the cause.
func (e *PoisonError) Unwrap() error { return e.Err }

// Is makes a PoisonError match ErrPoisonEvent.
func (e *PoisonError) Is(target error) bool { return target == ErrPoisonEvent }

// PublishError is a failed publish of event Seq.
type PublishError struct {
	Seq uint64
	Err error
}

// Error implements error.
func (e *PublishError) Error() string {
	return fmt.Sprintf("publish event %d: %v", e.Seq, e.Err)
}

// Unwrap returns the cause.
func (e *PublishError) Unwrap() error { return e.Err }
