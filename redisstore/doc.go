// Package redisstore shares a gateway's live state (circuit breakers, key
// rests, round-robin positions, latency statistics) between replicas
// through Redis or Valkey. Programs that do not import it do not build it.
//
//	st, err := redisstore.New(redisstore.WithAddr("redis:6379"), redisstore.WithPasswordEnv("REDIS_PASSWORD"))
//	if err != nil { ... }
//	defer st.Close()
//	tr, err := gwtransport.NewTransport(nil, models, gwtransport.WithStore(st))
//
// Importing the package also registers the "redis" kind for configuration
// files:
//
//	state:
//	  redis: {addr: "redis:6379", db: 0, prefix: gwtransport, password_env: REDIS_PASSWORD, timeout: 10ms}
//
// # What is shared, and how
//
// Every replica keeps its own state in memory (the mirror), which answers
// every read; Redis is never waited for beyond the bound ([WithTimeout],
// default 10 ms).
//
//   - Half-open probe lease: atomic in Redis (a Lua script): one replica at
//     a time probes a target whose cooldown ended, under a lease that
//     expires; the script announces the lease on the channel, so the
//     others wait for its verdict without asking Redis again; the probe's
//     verdict closes or reopens the breaker everywhere. Each lease has an
//     id of its own: a release, even queued, frees only that lease.
//   - Round-robin positions: one shared counter per route (INCR in Lua).
//   - Breaker opened until T or closed, key resting or disabled until T:
//     written (the later end wins, nothing shortens) and published without
//     waiting; replicas apply them to their mirrors within milliseconds.
//   - Latency samples: published, at most one per target per second per
//     replica ([WithLatencyEvery]), blended into each mirror's moving
//     average.
//   - Failure counting (consecutive failures, the failure-rate window),
//     attempt counters, key uses and KeyInterval stay per replica: sharing
//     them would cost a Redis round trip per attempt, and the first
//     replica to trip opens the breaker for all.
//
// Keys are <prefix>:<configuration fingerprint>:..., and the channel
// <prefix>:events:<db>, so replicas share state only with replicas of the
// same configuration on the same database; every key expires (a fact a
// minute after its end, a counter a day after its last use). API keys
// appear only as salted SHA-256 fingerprints, and facts name keys by them
// (never by position). No replica's clock is compared with another's:
// messages carry durations (how long ago, how long for) that the receiver
// adds to its own now, and facts in Redis are kept in Redis's clock
// (TIME). Whatever is read from Redis or the channel is bounded by the
// local configuration (a breaker open at most max(Cooldown, WithMaxRest),
// a key rest at most WithMaxRest, a disablement 10 minutes, another
// replica's lease at most this replica's); a span beyond a day, a key of
// the wrong type or shape is junk, ignored or replaced.
//
// # When Redis fails
//
// A call that exceeds the bound makes only that request use the mirror's
// answer; a call that fails to reach Redis (or calls overrunning for
// max(10 x the bound, 100 ms) with none answering) marks Redis down:
// requests go on with the mirror's answers (no request fails or waits
// because of Redis), the outage is logged once on the gateway's logger
// (never the password; a Store made before its Transport logs it at the
// first failure after Bind), and Redis is pinged every [WithRetry] on a
// connection of its own. When it answers (or the subscription comes
// back), the replica resynchronises: it reads the shared breakers and
// rests into its mirror, then writes its own standing facts. A dropped
// subscription alone is no outage (the request path still asks Redis).
// Redis refusing a command (WRONGTYPE, OOM...) is no outage either: that
// call stays local and the error is logged once per kind per minute.
// Redis unreachable or refusing the password at start is an outage: New
// does not fail; call [Store.Ping] to fail fast instead.
//
// go-redis itself prints its dial failures through its process-wide
// logger (redis.SetLogger), which this package leaves alone.
//
// Tests start their own redis-server (Debian package redis-server; Valkey
// is not in Debian bookworm). Without it they fail under CI=true and are
// skipped otherwise.
package redisstore
