// Package redisstore shares a gateway's live state (circuit breakers, key
// rests, round-robin positions, latency statistics) between replicas
// through Redis or Valkey. Programs that do not import it do not build it.
package redisstore
