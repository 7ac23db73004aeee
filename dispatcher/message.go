package dispatcher

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/seqrelay/seqrelay/eventlog"
)

const (
	// KeySeqNum is the header that carries the event's sequence number,
	// wire-compatible with consumers of the original dispatcher.
	KeySeqNum = "Bacalhau-SeqNum"
	// KeyEventType is the header that carries the event's type.
	KeyEventType = "Seqrelay-Type"
	// KeyWriter is the header that names the dispatcher instance that
	// published the message (see WithWriterID), for fencing.
	KeyWriter = "Seqrelay-Writer"
)

// MsgID returns the Nats-Msg-Id of event seq published by dispatcher id. The
// server de-duplicates re-sends by it.
func MsgID(id string, seq uint64) string {
	return msgID(id, strconv.FormatUint(seq, 10))
}

func msgID(id, seq string) string { return id + ":" + seq }

// ParseMsgID splits a Nats-Msg-Id made by MsgID.
func ParseMsgID(msgID string) (id string, seq uint64, ok bool) {
	i := strings.LastIndexByte(msgID, ':')
	if i < 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(msgID[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return msgID[:i], seq, true
}

// stamp adds the headers every published message carries.
func stamp(msg *nats.Msg, id, writer string, e eventlog.Event) {
	if msg.Header == nil {
		msg.Header = make(nats.Header, 4)
	}
	seq := strconv.FormatUint(e.Seq, 10)
	msg.Header[KeySeqNum] = []string{seq}
	msg.Header[nats.MsgIdHdr] = []string{msgID(id, seq)}
	msg.Header[KeyWriter] = []string{writer}
}

// SubjectCreator is the default MessageCreator: an event of type T becomes a
// message on subject Prefix + "." + T, with the payload as data, the
// metadata as headers and the type in KeyEventType. The type must be a
// valid subject: dot-separated tokens without spaces or wildcards.
type SubjectCreator struct {
	// Prefix is the subject prefix, such as "seqrelay.events".
	Prefix string
}

// NewSubjectCreator returns a SubjectCreator, checking the prefix.
func NewSubjectCreator(prefix string) (*SubjectCreator, error) {
	if err := ValidateSubject(prefix); err != nil {
		return nil, fmt.Errorf("subject prefix: %w", err)
	}
	return &SubjectCreator{Prefix: prefix}, nil
}

// CreateMessage implements MessageCreator.
func (c *SubjectCreator) CreateMessage(e eventlog.Event) (*nats.Msg, error) {
	if err := ValidateSubject(e.Type); err != nil {
		return nil, fmt.Errorf("type cannot be a subject: %w", err)
	}
	msg := &nats.Msg{Subject: c.Prefix + "." + e.Type, Data: e.Payload, Header: make(nats.Header, len(e.Metadata)+3)}
	for k, v := range e.Metadata {
		if err := validateHeader(k, v); err != nil {
			return nil, err
		}
		msg.Header[k] = []string{v}
	}
	msg.Header[KeyEventType] = []string{e.Type}
	return msg, nil
}

// ValidateSubject checks a publish subject: non-empty dot-separated tokens,
// no whitespace, no wildcards.
func ValidateSubject(s string) error {
	if s == "" {
		return fmt.Errorf("subject is empty")
	}
	for tok := range strings.SplitSeq(s, ".") {
		switch {
		case tok == "":
			return fmt.Errorf("subject %q has an empty token (a leading, trailing or double dot)", s)
		case tok == "*" || tok == ">":
			return fmt.Errorf("subject %q has the wildcard %q, which cannot be published to", s, tok)
		case strings.ContainsAny(tok, " \t\r\n\x00"):
			return fmt.Errorf("subject %q contains whitespace", s)
		}
	}
	return nil
}

func validateHeader(k, v string) error {
	if k == "" || strings.ContainsAny(k, ": \t\r\n") {
		return fmt.Errorf("metadata key %q cannot be a header name (no colons or whitespace)", k)
	}
	if strings.ContainsAny(v, "\r\n") {
		return fmt.Errorf("metadata value of %q contains a line break, which a header cannot carry", k)
	}
	if k == KeySeqNum || k == nats.MsgIdHdr || strings.HasPrefix(k, "Nats-") {
		return fmt.Errorf("metadata key %q is reserved for seqrelay and NATS", k)
	}
	return nil
}
