package dispatcher

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := Backoff{Base: time.Second, Max: 10 * time.Second}
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for attempt, w := range want {
		assert.Equal(t, w, b.Delay(attempt), "attempt %d", attempt)
	}
	assert.Equal(t, 10*time.Second, b.Delay(1000), "no overflow")
	assert.Equal(t, Backoff{Base: 5 * time.Second, Max: 5 * time.Minute}, BackoffFor(Config{}))
}
