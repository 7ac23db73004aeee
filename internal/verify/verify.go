// Package verify reads a stream back and checks the dispatcher's promise:
// every event once, in order, no gap. The demo, the crash-test harness and
// the end-to-end tests share it.
package verify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/seqrelay/seqrelay/dispatcher"
)

// Report is what a stream holds.
type Report struct {
	// Messages is how many messages the stream holds.
	Messages uint64
	// First and Last are the lowest and highest KeySeqNum seen.
	First, Last uint64
	// InOrder is true when KeySeqNum strictly increases along the stream.
	InOrder bool
	// Duplicates counts messages whose KeySeqNum was seen before.
	Duplicates uint64
	// Gaps counts sequence numbers missing between First and Last.
	Gaps uint64
	// FirstProblem describes the first disorder, duplicate or gap.
	FirstProblem string
}

// ExactlyOnce reports whether the stream holds first..last, once each, in order.
func (r Report) ExactlyOnce(first, last uint64) bool {
	return r.InOrder && r.Duplicates == 0 && r.Gaps == 0 &&
		r.First == first && r.Last == last && r.Messages == last-first+1
}

// String formats the report on one line.
func (r Report) String() string {
	s := fmt.Sprintf("%d messages, KeySeqNum %d..%d, in order: %s, duplicates: %d, gaps: %d",
		r.Messages, r.First, r.Last, yesNo(r.InOrder), r.Duplicates, r.Gaps)
	if r.FirstProblem != "" {
		s += " (first problem: " + r.FirstProblem + ")"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Stream reads every message of the named stream with an ordered consumer
// and checks the KeySeqNum headers. Messages without a KeySeqNum are an error.
func Stream(ctx context.Context, js jetstream.JetStream, name string) (Report, error) {
	str, err := js.Stream(ctx, name)
	if err != nil {
		return Report{}, fmt.Errorf("verify stream %q: %w", name, err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("verify stream %q: %w", name, err)
	}
	want := info.State.Msgs
	c := &checker{r: Report{InOrder: true}, seen: map[uint64]struct{}{}}
	if want == 0 {
		return c.r, nil
	}
	cons, err := str.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return Report{}, fmt.Errorf("verify stream %q: %w", name, err)
	}
	for c.r.Messages < want {
		batch, err := cons.FetchNoWait(1000)
		if err != nil {
			return c.r, fmt.Errorf("verify stream %q: %w", name, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return c.r, err
			}
			seq, err := strconv.ParseUint(m.Headers().Get(dispatcher.KeySeqNum), 10, 64)
			if err != nil {
				return c.r, fmt.Errorf("verify stream %q: message %d has no %s header", name, md.Sequence.Stream, dispatcher.KeySeqNum)
			}
			c.add(seq, md.Sequence.Stream)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return c.r, fmt.Errorf("verify stream %q: %w", name, err)
		}
		if n == 0 {
			select {
			case <-ctx.Done():
				return c.r, fmt.Errorf("verify stream %q: read %d of %d messages: %w", name, c.r.Messages, want, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	c.finish()
	return c.r, nil
}

// Seqs checks a list of KeySeqNums in stream order.
func Seqs(seqs []uint64) Report {
	c := &checker{r: Report{InOrder: true}, seen: map[uint64]struct{}{}}
	for i, s := range seqs {
		c.add(s, uint64(i+1))
	}
	c.finish()
	return c.r
}

type checker struct {
	r    Report
	seen map[uint64]struct{}
	prev uint64
}

func (c *checker) add(seq, streamSeq uint64) {
	c.r.Messages++
	if _, dup := c.seen[seq]; dup {
		c.r.Duplicates++
		c.problem("duplicate of event %d at stream sequence %d", seq, streamSeq)
	}
	c.seen[seq] = struct{}{}
	if c.r.Messages == 1 {
		c.r.First, c.r.Last = seq, seq
	}
	if c.r.Messages > 1 && seq <= c.prev {
		c.r.InOrder = false
		c.problem("event %d after event %d at stream sequence %d", seq, c.prev, streamSeq)
	}
	c.r.First, c.r.Last = min(c.r.First, seq), max(c.r.Last, seq)
	c.prev = seq
}

func (c *checker) finish() {
	if c.r.Messages == 0 {
		return
	}
	distinct := uint64(len(c.seen))
	c.r.Gaps = (c.r.Last - c.r.First + 1) - distinct
	if c.r.Gaps > 0 {
		for s := c.r.First; s <= c.r.Last; s++ {
			if _, ok := c.seen[s]; !ok {
				c.problem("event %d missing", s)
				break
			}
		}
	}
}

func (c *checker) problem(format string, args ...any) {
	if c.r.FirstProblem == "" {
		c.r.FirstProblem = fmt.Sprintf(format, args...)
	}
}
