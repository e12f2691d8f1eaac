//go:build !unix

package gwtransport

// cpuTime is not measured here.
func cpuTime() int64 { return 0 }
