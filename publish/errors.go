package publish

import "errors"

// Errors of this package; match them with errors.Is.
var (
	// ErrNotConnected is returned by Begin while the connection is down.
	ErrNotConnected = errors.New("not connected to NATS")
	// ErrDisconnected fails a session whose connection dropped: the
	// acknowledgements of messages in flight are lost with it.
	ErrDisconnected = errors.New("connection to NATS lost")
	// ErrStreamNotFound is returned when the target stream does not exist.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrConflict marks a publish the stream refused because its newest
	// message is not the one this session published last: another writer
	// published in between, or an earlier message of the session failed.
	ErrConflict = errors.New("stream changed under this publisher")
	// ErrSessionClosed is returned by Publish after Close.
	ErrSessionClosed = errors.New("publishing session closed")
)
