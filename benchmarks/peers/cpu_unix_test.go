//go:build unix

package peers

import "syscall"

// cpuTime returns the CPU time (user and system) this process has used,
// in nanoseconds: client, gateway and the in-process upstream together.
// Unlike wall-clock time, it barely moves when other processes load the
// machine, so it resolves small differences on a shared machine.
func cpuTime() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
