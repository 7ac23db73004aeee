package eventlog

import "sync"

// Notifier is a broadcast signal: Wait returns a channel that the next Notify
// closes. Stores embed it to implement Log.Appended. The zero value is ready.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// Wait returns a channel closed by the next call to Notify.
func (n *Notifier) Wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// Notify wakes every waiter.
func (n *Notifier) Notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
