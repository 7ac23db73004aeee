//go:build !linux

package crashtest

import "syscall"

// childAttr: without a parent-death signal, children are killed by the
// test's cleanup only.
func childAttr() *syscall.SysProcAttr { return nil }
