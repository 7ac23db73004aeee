package dispatcher

import (
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/seqrelay/seqrelay/eventlog"
)

// Headers of a dead letter.
const (
	// KeyDeadLetterError carries why the event could not be delivered.
	KeyDeadLetterError = "Seqrelay-Error"
	// KeyPayloadDropped is set (to the payload's size) when the payload did
	// not fit into the dead letter either.
	KeyPayloadDropped = "Seqrelay-Payload-Dropped"
)

type deadLetter struct {
	subject string
	event   eventlog.Event
	cause   error
}

// message builds the dead letter, with or without the payload.
func (d *deadLetter) message(withPayload bool) *nats.Msg {
	msg := &nats.Msg{Subject: d.subject, Header: nats.Header{}}
	msg.Header[KeyEventType] = []string{sanitizeHeaderValue(d.event.Type)}
	msg.Header[KeyDeadLetterError] = []string{sanitizeHeaderValue(d.cause.Error())}
	if withPayload {
		msg.Data = d.event.Payload
	} else {
		msg.Header[KeyPayloadDropped] = []string{strconv.Itoa(len(d.event.Payload))}
	}
	return msg
}

func sanitizeHeaderValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	if len(b) > 1024 {
		b = append(b[:1021], "..."...)
	}
	return string(b)
}
