package workflows

import (
	"time"

	"github.com/seqrelay/seqrelay/dispatcher"
)

// Status is what the "state" query returns: the seed's State (its fields
// LastAckedSeqNum, LastObservedSeqNum and LastCheckpoint at the top level)
// and what an operator needs beside it.
type Status struct {
	dispatcher.Status
	// Paused is true after a pause signal, until resume.
	Paused bool
	// Stopping is true after a stop signal.
	Stopping bool
	// Head is the newest event in the log when the last batch ended; Lag is
	// Head minus LastAckedSeqNum.
	Head uint64
	Lag  uint64
	// Batches counts batch activities completed; Stalls those the stall
	// timer cancelled.
	Batches uint64
	Stalls  uint64
	// Runs counts workflow runs of this dispatcher (continue-as-new).
	Runs int
	// LastBatchTime is when the last batch completed.
	LastBatchTime time.Time `json:",omitzero"`
}
