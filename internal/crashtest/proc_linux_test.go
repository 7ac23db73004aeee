package crashtest

import "syscall"

// childAttr makes a child get SIGKILL when the thread that started it (the
// supervisor's, locked to its goroutine) ends, so that no dispatcher
// outlives the test binary.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
