package dispatcher

import "time"

// BackoffCoefficient is the factor by which the retry delay grows after each
// consecutive failure, in both runtimes (the Temporal retry policy uses it).
const BackoffCoefficient = 2

// Backoff is the retry delay rule: Base after the first failure, doubling on
// each further one, never more than Max.
type Backoff struct {
	Base time.Duration
	Max  time.Duration
}

// BackoffFor returns the Backoff of a Config.
func BackoffFor(c Config) Backoff {
	c = c.WithDefaults()
	return Backoff{Base: c.BaseRetryInterval, Max: c.MaxRetryInterval}
}

// Delay returns the wait before retry number attempt (1 for the first
// retry after a failure).
func (b Backoff) Delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := b.Base
	for i := 1; i < attempt; i++ {
		if d >= b.Max/BackoffCoefficient {
			return b.Max
		}
		d *= BackoffCoefficient
	}
	return min(d, b.Max)
}
