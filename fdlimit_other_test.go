//go:build !unix

package gwtransport

// fdLimit is not known here; the large fan-outs are tried anyway.
func fdLimit() uint64 { return 1 << 20 }
