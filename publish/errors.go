package publish

import (
	"errors"

	"github.com/seqrelay/seqrelay/dispatcher"
)

// Errors of this package; match them with errors.Is.
var (
	// ErrNotConnected is returned by Begin while the connection is down.
	ErrNotConnected = errors.New("not connected to NATS")
	// ErrDisconnected fails a session whose connection dropped: the
	// acknowledgements of messages in flight are lost with it.
	ErrDisconnected = errors.New("connection to NATS lost")
	// ErrStreamNotFound is returned when the target stream does not exist.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrConflict is dispatcher.ErrConflict, for errors.Is in this package's terms.
	ErrConflict = dispatcher.ErrConflict
	// ErrSessionClosed is returned by Publish after Close.
	ErrSessionClosed = errors.New("publishing session closed")
)
