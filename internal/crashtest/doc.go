// Package crashtest is seqrelay's crash-test harness (issue 4). Its test
// drives the real seqrelay binary as child processes and checks the
// promise: every event delivered once, in sequence order, with no gap,
// through crashes, restarts and outages.
//
// While a goroutine appends events to an SQLite event log, the test kills
// the dispatcher process with SIGKILL at random moments and starts it
// again, and it stops and restarts the NATS server, once for longer than
// the stream's de-duplication window (so that only the dispatcher's
// reconciliation with the stream's newest message prevents duplicates).
// Once the stream holds every event, the test stops the dispatcher with
// SIGINT and reads the stream back with package verify.
//
// It runs with the rest of the suite (go test ./...), and alone with
//
//	go test -count=1 -run Crash -v ./internal/crashtest
//
// It is skipped under -short. Environment variables tune it:
//
//	SEQRELAY_CRASH_EVENTS         events to append and deliver (default 20000)
//	SEQRELAY_CRASH_KILLS          SIGKILLs of the dispatcher (default 10)
//	SEQRELAY_CRASH_NATS_RESTARTS  NATS stops and restarts (default 2; one outlasts the de-duplication window)
//	SEQRELAY_CRASH_SEED           seed of the schedule and the appends (default: random, printed; set it to replay a run)
//	SEQRELAY_CRASH_DURATION       how long the appends are spread over (default 20s)
//	SEQRELAY_CRASH_TIMEOUT        how long delivery may take once the appends are done (default 90s)
//	SEQRELAY_CRASH_BUILD_FLAGS    extra flags for building the binary, such as -race
//	SEQRELAY_CRASH_KEEP           1: keep the work directory even when the test passes
//
// The harness runs any dispatcher runtime that is a process the test can
// kill (the dispatcherRuntime interface): the in-process runtime runs
// `seqrelay run`; a Temporal runtime would run `seqrelay worker` next to a
// Temporal dev server.
//
// When the test fails it keeps its work directory (event log, NATS store,
// children.log with every child's output interleaved with the harness's
// actions) and prints its path and the seed.
package crashtest
