package dispatcher

import (
	"context"
	"errors"
	"time"
)

// deliver runs sessions until stop or ctx ends, recovering from failures:
// after each failure it rewinds to the last acknowledged event, waits with
// exponential backoff from BaseRetryInterval up to MaxRetryInterval, and
// begins a new session, which first reconciles with what the target holds.
// A poison event under PoisonStop, a target written by someone else, or a
// second dispatcher with this ID (ErrFenced) halts delivery until Stop:
// retrying cannot fix them.
func (d *Dispatcher) deliver(ctx context.Context, p *Progress, stop <-chan struct{}) {
	backoff := BackoffFor(d.cfg)
	for {
		err := d.relay.Deliver(ctx, d.publisher, p, stop, RunOptions{})
		if err == nil || ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrPoisonEvent) || errors.Is(err, ErrForeignTarget) || errors.Is(err, ErrFenced) {
			p.halt(err, time.Now())
			d.log.Error("delivery halted; fix the cause, then restart the dispatcher", "error", err, "state", p.State())
			select {
			case <-stop:
			case <-ctx.Done():
			}
			return
		}
		n := p.fail(err, time.Now())
		delay := backoff.Delay(n)
		d.log.Warn("delivery failed; rewound to the last acknowledged event", "error", err,
			"attempt", n, "retry_in", delay, "resume_after", p.State().LastObservedSeqNum)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}
