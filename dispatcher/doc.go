// Package dispatcher delivers events from an event log to NATS reliably: in
// sequence order, each once, through crashes, restarts and outages, with
// progress checkpointed and a State anyone can query.
//
// It keeps the API of the dispatcher it is modelled on (New, Start, Stop,
// State, Config, DefaultConfig, ErrDispatcher, KeySeqNum) and holds the one
// delivery engine that both runtimes run: the in-process Dispatcher of this
// package and the Temporal DispatcherWorkflow of package workflows.
//
// The pieces:
//
//   - Tracker: the sequence rules (observed, acknowledged, checkpoint
//     target, rewind, reconcile), pure and shared by both runtimes.
//   - Backoff: the retry delay between BaseRetryInterval and MaxRetryInterval.
//   - Relay: reads events after a position, turns each into a message with a
//     MessageCreator, publishes them in order over a Session with a bounded
//     in-flight window, and folds acknowledgements into a Tracker.
//   - Dispatcher: the in-process runtime: a Relay in a recovery loop, with
//     checkpoint and stall timers.
package dispatcher
