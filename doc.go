// Package gwtransport adds fallback, retries and load balancing across LLM
// providers to the HTTP clients a Go program already has. It is an
// [http.RoundTripper]: every request whose JSON body says
// "model": "gateway" is routed over configured "<provider>/<model>"
// targets; other requests pass through untouched, and call sites do not
// change.
//
//	go get github.com/gwtransport/gwtransport
//
//	client := openai.NewClient() // github.com/openai/openai-go/v3
//	mgr, err := gwtransport.Init(&client, []string{"openai/gpt-4o", "groq/llama-3.3-70b"})
//	// client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gateway", ...})
//
// # What it guarantees
//
//   - The caller's request is never modified; the body a provider receives
//     differs only in "model" (and the model messages configured for it).
//   - Deny by default across providers: an attempt at another provider
//     carries only the allowlisted caller headers ([DefaultForwardHeaders],
//     [WithForwardHeaders]) and that provider's own credentials; no key,
//     cookie or query string of one provider reaches another, and no secret
//     appears in the gateway's errors, headers, events or logs.
//   - Exactly the attempts the policy allows: at most [WithMaxAttempts], each
//     target at most its retries plus one, with an openai-go client's own
//     retries never multiplying them.
//   - A streamed answer ends in io.EOF only when it is complete; otherwise
//     the reader gets [ErrStreamTruncated], [ErrStreamIdle],
//     [ErrStreamMalformed] or a [*StreamError] — unless a target declared
//     able to continue a prefill ([WithModelContinuation]) continues it
//     from exactly the text delivered, spliced into the same stream.
//   - A non-streamed answer is handed over only when its body is whole and
//     valid; a cut, stalled or malformed body is retried and failed over.
//   - Bad input gets an error naming what and where, never a panic.
//
// The README lists each guarantee with the tests that attack it.
//
// # The API
//
// Installing:
//   - [Init] installs the gateway into *http.Client and openai-go clients
//     and returns a [*RetryManager] ([RetryManager.Uninstall],
//     [RetryManager.Stats]).
//   - [NewTransport] wraps any [http.RoundTripper] (the http.Client given to
//     go-openai, say); [Transport.Reconfigure] swaps its configuration while
//     requests run.
//
// Options ([Option]), by concept:
//   - Routes: [WithRouteName], [WithRoute], [WithStrategy] (see
//     [StrategyOrdered] and the other strategies, [CustomStrategy]),
//     [WithAliases], [WithTimeWindows], [WithTimeZone].
//   - Retries and time: [WithMaxRetries], [WithModelMaxRetries],
//     [WithMaxAttempts], [WithTimeout], [WithModelTimeout], [WithBackoff],
//     [WithModelBackoff], [WithBackOffFactory], [WithMaxRetryWait],
//     [WithPolicy] ([DefaultPolicy]).
//   - Streams: [WithStreamTimeouts], [WithStreamFirstEvent],
//     [WithModelFirstEvent], [WithStreamIdle], [WithStreamFinishGrace],
//     [WithStreamMalformedLimit].
//   - Rescue after the commit point: [WithModelContinuation]
//     ([Continuation]), [WithContinuation]; verified non-streamed bodies:
//     [WithMaxVerifiedBody], [WithBodyIdle].
//   - Live state: [WithCircuitBreaker] ([Breaker]), [WithMaxRest].
//   - Providers and credentials: [WithProvider] ([Provider],
//     [BuiltinProviders]), [WithClientProvider], [WithForwardHeaders],
//     [WithRequireCredentials].
//   - Requests: [WithModelMessages], [WithMaxBodyBytes],
//     [WithBaseTransport].
//   - Observing: [WithOnAttempt], [WithOnEvent], [WithLogger].
//   - Tests: [WithClock], [WithRand], [WithEnv].
//
// Configuration files: [LoadConfigFile] and [LoadConfig] read JSON or YAML
// into a [Config]; [WithConfig] applies it.
//
// Errors: [*Error] (no target answered; every [Attempt] with its cause),
// [ErrNoTarget] (with a hint: [RetryAfterOf]), [ErrMissingCredentials],
// [ErrMalformedBody], for verified bodies [ErrResponseTruncated],
// [ErrResponseIdle], [ErrResponseMalformed], [ErrResponseFailed], and for
// streams [*StreamError] ([ErrStreamFailed]), [ErrStreamTruncated],
// [ErrStreamIdle], [ErrStreamMalformed]. Responses to routed requests carry
// [HeaderTarget], [HeaderAttempts] and [HeaderReason].
//
// Context helpers: [WithPreference] asks for a target first (as the
// [HeaderPrefer] header does); [WithTrail] records every attempt of a
// request in a [*Trail].
//
// Testing: package
// [github.com/gwtransport/gwtransport/gatewaytest] is an in-process
// OpenAI-compatible provider with programmable faults and a request
// journal.
package gwtransport
