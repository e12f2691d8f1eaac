// Command gwproxy serves an OpenAI-compatible HTTP API backed by the
// gwtransport engine, so that programs in any language get its fallback,
// retries and load balancing.
package main

func main() {}
