package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// hardenProcess keeps serve's memory — keys, tokens, decrypted messages — out of core dumps and
// away from other processes of the same user: no core file (RLIMIT_CORE 0), and not dumpable
// (PR_SET_DUMPABLE 0, which also stops ptrace and reading /proc/PID/mem by anyone but root).
func hardenProcess() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("core dumps could not be disabled (setrlimit RLIMIT_CORE): %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("the process could not be made undumpable (prctl PR_SET_DUMPABLE): %w", err)
	}
	return nil
}
