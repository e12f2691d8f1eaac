package gwtransport

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AuthScheme says how a provider expects its API key.
type AuthScheme string

const (
	// AuthBearer sends "Authorization: Bearer <key>" (OpenAI and most
	// OpenAI-compatible providers).
	AuthBearer AuthScheme = "bearer"
	// AuthAPIKey sends "api-key: <key>" (Azure OpenAI).
	AuthAPIKey AuthScheme = "api-key"
	// AuthNone sends no credentials (a local Ollama, say).
	AuthNone AuthScheme = "none"
)

// URLStyle says how a provider's request URLs are built.
type URLStyle string

const (
	// StyleOpenAI appends the operation to the base URL:
	// {base}/chat/completions.
	StyleOpenAI URLStyle = "openai"
	// StyleAzure is Azure OpenAI's classic scheme:
	// {endpoint}/openai/deployments/{model}/chat/completions?api-version=...
	// for chat, completions, embeddings, speech and images, and
	// {endpoint}/openai/responses?api-version=... (deployment in the body)
	// for the others, as openai-go's azure package sends them.
	StyleAzure URLStyle = "azure"
	// StyleAzureV1 is Azure OpenAI's v1 API: {endpoint}/openai/v1/chat/completions,
	// with the deployment in the body's "model".
	StyleAzureV1 URLStyle = "azure-v1"
)

// Provider describes an OpenAI-compatible API that targets can name as
// "<provider>/<model>". The built-in table (see [BuiltinProviders]) covers
// the common providers; [WithProvider] adds one or overrides fields of a
// built-in one.
type Provider struct {
	// Name is the prefix targets use: "openai" in "openai/gpt-4o".
	Name string `json:"name"`
	// BaseURL is the API root, e.g. "https://api.groq.com/openai/v1". For the
	// Azure styles it is the resource endpoint, e.g.
	// "https://myres.openai.azure.com".
	BaseURL string `json:"base_url,omitempty"`
	// BaseURLEnv names an environment variable read when BaseURL is empty.
	BaseURLEnv string `json:"base_url_env,omitempty"`
	// APIKey is the provider's key. It is a secret: it is sent only to this
	// provider and never logged.
	APIKey string `json:"-"`
	// APIKeyEnv names the environment variable holding the key when APIKey is
	// empty.
	APIKeyEnv string `json:"api_key_env,omitempty"`
	// Auth is how the key is sent; empty means AuthBearer.
	Auth AuthScheme `json:"auth,omitempty"`
	// Style is how URLs are built; empty means StyleOpenAI.
	Style URLStyle `json:"style,omitempty"`
	// APIVersion is the api-version query parameter of StyleAzure.
	APIVersion string `json:"api_version,omitempty"`
	// APIVersionEnv names the environment variable read when APIVersion is
	// empty.
	APIVersionEnv string `json:"api_version_env,omitempty"`
	// APIKeys are several keys used in rotation (a key pool); with APIKey,
	// APIKey comes first. A key answered 429 rests for the Retry-After, a
	// key answered 401 or 403 is disabled for 10 minutes; when every key
	// rests, the gateway moves on to the next target. Secrets: never
	// logged, serialized or reported.
	APIKeys []string `json:"-"`
	// APIKeysEnv names environment variables holding more keys for the
	// pool.
	APIKeysEnv []string `json:"api_keys_env,omitempty"`
	// KeyInterval is the least time between two uses of the same key
	// (aiflows' wait time per key); 0 means none. A key inside its
	// interval is not used; when every key of a provider is, its targets
	// are excluded like targets whose keys rest: another target is used,
	// and when none is left the request waits for the interval to end
	// (bounded, see WithMaxRetryWait) rather than failing.
	KeyInterval Duration `json:"key_interval,omitempty"`
	// Headers are extra headers sent to this provider only. Their names are
	// treated as this provider's credentials: they are removed from requests
	// sent to any other provider.
	Headers map[string]string `json:"-"`
	// HeadersEnv are extra headers whose values are read from environment
	// variables: header name -> variable name.
	HeadersEnv map[string]string `json:"headers_env,omitempty"`
	// KeyOptional says the provider works without a key (a local server
	// such as vLLM, LM Studio or llama.cpp): when no key is set, attempts
	// carry no credentials; when one is set, it is sent as Auth says.
	KeyOptional bool `json:"key_optional,omitempty"`
}

// defaultAzureAPIVersion is used when neither APIVersion nor its
// environment variable is set.
const defaultAzureAPIVersion = "2024-10-21"

// BuiltinProviders returns the providers known without configuration, keyed
// by name. Keys and, where noted, endpoints come from the conventional
// environment variables. Each entry cites the provider's documentation of
// its OpenAI-compatible base URL, auth scheme and key variable.
func BuiltinProviders() map[string]Provider {
	bearer := func(name, base, env string) Provider {
		return Provider{Name: name, BaseURL: base, APIKeyEnv: env, Auth: AuthBearer, Style: StyleOpenAI}
	}
	// local is a server on this machine that needs no key unless it was
	// started with one (then the variable holds it).
	local := func(name, base, env string) Provider {
		p := bearer(name, base, env)
		p.KeyOptional = true
		return p
	}
	ps := []Provider{
		// https://platform.openai.com/docs/api-reference/authentication
		bearer("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
		// https://learn.microsoft.com/azure/ai-services/openai/reference
		{Name: "azure", BaseURLEnv: "AZURE_OPENAI_ENDPOINT", APIKeyEnv: "AZURE_OPENAI_API_KEY", Auth: AuthAPIKey, Style: StyleAzure, APIVersionEnv: "OPENAI_API_VERSION"},
		// https://platform.claude.com/docs/en/api/openai-sdk (the OpenAI
		// SDK compatibility layer: base_url https://api.anthropic.com/v1/,
		// ANTHROPIC_API_KEY as the SDK's api_key, so a Bearer token)
		bearer("anthropic", "https://api.anthropic.com/v1", "ANTHROPIC_API_KEY"),
		// https://docs.x.ai/api/integrations (base URL, XAI_API_KEY) and
		// https://docs.x.ai/developers/rest-api-reference/inference
		// ("Authorization: Bearer <your xAI API key>")
		bearer("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
		// https://inference-docs.cerebras.ai/resources/openai
		bearer("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
		// https://docs.perplexity.ai/docs/sonar/openai-compatibility
		// (Sonar: base_url https://api.perplexity.ai, Bearer) and
		// https://docs.perplexity.ai/docs/grounded-llm/openai-compatibility
		// (PERPLEXITY_API_KEY)
		bearer("perplexity", "https://api.perplexity.ai", "PERPLEXITY_API_KEY"),
		// https://docs.sambanova.ai/docs/en/features/openai-compatibility and
		// https://docs.sambanova.ai/cloud/docs/resources/glossary
		// (https://api.sambanova.ai/v1/chat/completions)
		bearer("sambanova", "https://api.sambanova.ai/v1", "SAMBANOVA_API_KEY"),
		// https://deepinfra.com/docs/openai_api (endpoint
		// https://api.deepinfra.com/v1/openai, Bearer $DEEPINFRA_TOKEN)
		bearer("deepinfra", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_TOKEN"),
		// https://novita.ai/docs/guides/llm-api (base URL
		// https://api.novita.ai/v3/openai)
		bearer("novita", "https://api.novita.ai/v3/openai", "NOVITA_API_KEY"),
		// https://docs.hyperbolic.xyz/docs/rest-api
		// (https://api.hyperbolic.xyz/v1/chat/completions,
		// "Authorization: Bearer $HYPERBOLIC_API_KEY")
		bearer("hyperbolic", "https://api.hyperbolic.xyz/v1", "HYPERBOLIC_API_KEY"),
		// https://docs.tokenfactory.nebius.com/api-reference/examples/text-generation
		// (Nebius Token Factory, formerly AI Studio: base_url
		// https://api.tokenfactory.nebius.com/v1/, NEBIUS_API_KEY, Bearer)
		bearer("nebius", "https://api.tokenfactory.nebius.com/v1", "NEBIUS_API_KEY"),
		// https://docs.together.ai/docs/openai-api-compatibility
		bearer("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
		// https://console.groq.com/docs/openai
		bearer("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
		// https://docs.mistral.ai/api/
		bearer("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
		// https://api-docs.deepseek.com/
		bearer("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
		// https://openrouter.ai/docs/quickstart
		bearer("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
		// https://docs.fireworks.ai/tools-sdks/openai-compatibility
		bearer("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
		// https://ai.google.dev/gemini-api/docs/openai
		bearer("gemini", "https://generativelanguage.googleapis.com/v1beta/openai", "GEMINI_API_KEY"),
		// https://github.com/ollama/ollama/blob/main/docs/openai.md (no key)
		{Name: "ollama", BaseURL: "http://localhost:11434/v1", Auth: AuthNone, Style: StyleOpenAI},
		// https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html
		// (a key only when the server was started with --api-key or
		// VLLM_API_KEY)
		local("vllm", "http://localhost:8000/v1", "VLLM_API_KEY"),
		// https://lmstudio.ai/docs/api/openai-api (http://localhost:1234/v1)
		// and https://lmstudio.ai/docs/developer/core/authentication (no
		// authentication by default; with "Require Authentication" on,
		// "Authorization: Bearer $LM_API_TOKEN")
		local("lmstudio", "http://localhost:1234/v1", "LM_API_TOKEN"),
		// https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md
		// (llama-server on http://localhost:8080, OpenAI routes under /v1;
		// --api-key or LLAMA_API_KEY makes it check a Bearer key)
		local("llamacpp", "http://localhost:8080/v1", "LLAMA_API_KEY"),
	}
	m := make(map[string]Provider, len(ps))
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}

// mergeProvider overlays the non-empty fields of o on p.
func mergeProvider(p, o Provider) Provider {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&p.BaseURL, o.BaseURL)
	set(&p.BaseURLEnv, o.BaseURLEnv)
	set(&p.APIKey, o.APIKey)
	set(&p.APIKeyEnv, o.APIKeyEnv)
	set((*string)(&p.Auth), string(o.Auth))
	set((*string)(&p.Style), string(o.Style))
	set(&p.APIVersion, o.APIVersion)
	set(&p.APIVersionEnv, o.APIVersionEnv)
	if o.APIKeys != nil {
		p.APIKeys = o.APIKeys
	}
	if o.APIKeysEnv != nil {
		p.APIKeysEnv = o.APIKeysEnv
	}
	if o.KeyInterval != 0 {
		p.KeyInterval = o.KeyInterval
	}
	if o.Headers != nil {
		p.Headers = o.Headers
	}
	if o.HeadersEnv != nil {
		p.HeadersEnv = o.HeadersEnv
	}
	if o.KeyOptional {
		p.KeyOptional = true
	}
	return p
}

// provider is a resolved Provider: environment read, URL parsed, headers
// canonicalised.
type provider struct {
	name       string
	base       string // no trailing slash; "" when not configured
	baseURL    *url.URL
	key        string
	keyEnv     string
	baseEnv    string // the variable BaseURL comes from, named in errors
	auth       AuthScheme
	style      URLStyle
	apiVersion string
	headers    http.Header
	pool       *keyPool // nil when the provider has no key
	keyOpt     bool     // Provider.KeyOptional: no key means no credentials, not a failure
	keysEnv    []string // Provider.APIKeysEnv, named in errors
	matchHost  string   // "scheme://host" of baseURL, normalised (see normalizeHost)
	scheme     string   // baseURL's scheme, lower case
	host       string   // baseURL's host, lower case, without the scheme's default port
	matchPath  string   // baseURL's path without a trailing slash
}

func resolveProvider(p Provider, env func(string) (string, bool)) (*provider, error) {
	if field := badEnvName(p); field != "" {
		return nil, fmt.Errorf("gwtransport: provider %q: %s is not an environment variable name (want letters, digits and _, not starting with a digit; the value itself is never written here)", p.Name, field)
	}
	get := func(v, name string) string {
		if v == "" && name != "" {
			v, _ = env(name)
		}
		return v
	}
	r := &provider{
		name:       p.Name,
		base:       strings.TrimRight(get(p.BaseURL, p.BaseURLEnv), "/"),
		key:        get(p.APIKey, p.APIKeyEnv),
		keyEnv:     p.APIKeyEnv,
		baseEnv:    p.BaseURLEnv,
		auth:       p.Auth,
		style:      p.Style,
		apiVersion: get(p.APIVersion, p.APIVersionEnv),
		keyOpt:     p.KeyOptional,
		keysEnv:    p.APIKeysEnv,
	}
	if r.auth == "" {
		r.auth = AuthBearer
	}
	if r.style == "" {
		r.style = StyleOpenAI
	}
	switch r.auth {
	case AuthBearer, AuthAPIKey, AuthNone:
	default:
		return nil, fmt.Errorf("gwtransport: provider %q: unknown auth scheme (want bearer, api-key or none)", p.Name)
	}
	switch r.style {
	case StyleOpenAI, StyleAzureV1:
	case StyleAzure:
		if r.apiVersion == "" {
			r.apiVersion = defaultAzureAPIVersion
		}
	default:
		return nil, fmt.Errorf("gwtransport: provider %q: unknown URL style (want openai, azure or azure-v1)", p.Name)
	}
	if r.base != "" {
		u, err := url.Parse(r.base)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("gwtransport: provider %q: base URL must be absolute, like https://host/v1", p.Name)
		}
		r.baseURL = u
		r.scheme, r.host = normalizeSchemeHost(u.Scheme, u.Host)
		r.matchHost = r.scheme + "://" + r.host
		r.matchPath = strings.TrimRight(u.Path, "/")
	}
	if len(p.Headers)+len(p.HeadersEnv) > 0 {
		r.headers = make(http.Header, len(p.Headers)+len(p.HeadersEnv))
		for _, k := range sortedKeys(p.Headers) {
			if err := checkHeader(p.Name, k, p.Headers[k], "Headers["+strconv.Quote(k)+"]"); err != nil {
				return nil, err
			}
			r.headers.Set(k, p.Headers[k])
		}
		for _, k := range sortedKeys(p.HeadersEnv) {
			name := p.HeadersEnv[k]
			if v, ok := env(name); ok {
				if err := checkHeader(p.Name, k, v, "environment variable "+name); err != nil {
					return nil, err
				}
				r.headers.Set(k, v)
			}
		}
	}
	var keys []string
	if r.key != "" {
		src := "APIKey"
		if p.APIKey == "" {
			src = "environment variable " + p.APIKeyEnv
		}
		if err := checkKey(p.Name, r.key, src); err != nil {
			return nil, err
		}
		keys = append(keys, r.key)
	}
	for i, k := range p.APIKeys {
		if err := checkKey(p.Name, k, "APIKeys["+strconv.Itoa(i)+"]"); err != nil {
			return nil, err
		}
	}
	keys = append(keys, p.APIKeys...)
	for _, name := range p.APIKeysEnv {
		if v, ok := env(name); ok && v != "" {
			if err := checkKey(p.Name, v, "environment variable "+name); err != nil {
				return nil, err
			}
			keys = append(keys, v)
		}
	}
	if p.KeyInterval < 0 {
		return nil, fmt.Errorf("gwtransport: provider %q: key interval must not be negative", p.Name)
	}
	r.pool = newKeyPool(keys, time.Duration(p.KeyInterval))
	return r, nil
}

// checkKey refuses an API key no HTTP header can carry (a control
// character, such as the trailing newline of a key file read as is): every
// attempt would fail before anything is sent. The error names the provider
// and where the key came from (src), never the key.
func checkKey(provName, key, src string) error {
	if !validHeaderValue(key) {
		return fmt.Errorf("gwtransport: provider %q: the API key from %s contains a character no HTTP header can carry (a control character such as a trailing newline)", provName, src)
	}
	return nil
}

// checkHeader refuses a configured header whose name is not an HTTP token
// or whose value no HTTP header can carry. The error names the provider,
// the header and where the value came from (src), never the value.
func checkHeader(provName, name, value, src string) error {
	if !validHeaderName(name) {
		// Not echoed: a whole "Name: value" line may have been pasted.
		return fmt.Errorf("gwtransport: provider %q: a configured header name is not a valid HTTP header name (a token: no spaces, no colon)", provName)
	}
	if !validHeaderValue(value) {
		return fmt.Errorf("gwtransport: provider %q: the value of header %q from %s contains a character no HTTP header can carry (a control character such as a trailing newline)", provName, name, src)
	}
	return nil
}

// validHeaderValue reports whether net/http accepts v as a header value:
// no control character but horizontal tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// sortedKeys returns the keys of m in order, so that the first invalid
// entry reported is the same on every run.
func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// credentialHeaders are the request headers that carry a provider's
// credentials or identity; a provider's own Headers are added to the set at
// configuration time. They tell whether the caller's request carries
// credentials of its own, and no forwarding allowlist may name them:
// requests to a provider other than the one the caller addressed carry only
// allowlisted headers (see DefaultForwardHeaders), never these.
var credentialHeaders = []string{
	"Authorization",
	"Api-Key",
	"Openai-Organization",
	"Openai-Project",
	"X-Api-Key",
	"X-Goog-Api-Key",
	"Cookie",
	"Proxy-Authorization",
}

// collectSecretHeaders returns the canonical names of every credential header,
// built-in and configured, sorted and without duplicates.
func collectSecretHeaders(ps map[string]*provider) []string {
	seen := map[string]bool{}
	out := []string{}
	add := func(h string) {
		h = http.CanonicalHeaderKey(h)
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	for _, h := range credentialHeaders {
		add(h)
	}
	for _, p := range ps {
		for h := range p.headers {
			add(h)
		}
	}
	sort.Strings(out)
	return out
}

// operations are the OpenAI API operations whose JSON bodies carry "model",
// longest first so that "chat/completions" wins over "completions".
var operations = []string{
	"images/generations",
	"chat/completions",
	"audio/speech",
	"moderations",
	"completions",
	"embeddings",
	"responses",
}

// origin is where the caller sent an intercepted request, split into the
// parts a target's URL is built from.
type origin struct {
	provider   *provider // the provider the caller's client serves
	url        *url.URL  // the caller's URL
	basePath   string    // the path before the operation, no trailing slash
	op         string    // "chat/completions", ...
	deployment bool      // the path was Azure's /openai/deployments/{name}/op
	// matched says the request URL is under provider's base URL (rule 1 of
	// originTable). When false the provider was inferred (an Azure shape,
	// or the client provider by default): its attempts carry the caller's
	// headers as they are, never its configured key or headers, which go
	// to its base URL only.
	matched bool
}

// azureDeployments is the path segment of Azure's classic URLs.
const azureDeployments = "/openai/deployments/"

// azureDeploymentOps are the operations Azure's classic API serves under
// /openai/deployments/{deployment}/ (the JSON routes of openai-go's azure
// package); the others are at /openai/{op}, deployment in the body.
var azureDeploymentOps = map[string]bool{
	"chat/completions":   true,
	"completions":        true,
	"embeddings":         true,
	"audio/speech":       true,
	"images/generations": true,
}

// originTable decides which provider the client behind a request serves
// (its "origin"). Attempts at that provider keep the caller's URL and
// headers; attempts at any other provider carry only allowlisted headers
// and that provider's own credentials. The rules, in order:
//
//  1. The provider whose base URL is the longest prefix of the request URL
//     wins: same scheme and host (case-insensitive, default port implied),
//     and a base path that is the request's path or a prefix of it on a
//     "/" boundary. Nested base URLs ("/" and "/v1") are thus resolved by
//     length, never by map order.
//  2. Providers with the same base URL are told apart by the shape of the
//     request's path after that base: /openai/deployments/... (or
//     /openai/{op} with an api-version query) is StyleAzure, /openai/v1/...
//     is StyleAzureV1, anything else StyleOpenAI. If several share the
//     style, the client provider ([WithClientProvider]) wins when it is
//     among them; Init refuses the configurations where it is not, since a
//     request could then belong to either. If none has the style, the
//     client provider wins when among them, else the request fails without
//     being sent.
//  3. A URL no base URL matches is Azure's when it has Azure's shape: a
//     deployment path, /openai/{op} or /openai/v1/{op} with an api-version
//     query, /openai/v1/{op} with an Api-Key header, or an Azure host
//     (*.openai.azure.com, *.cognitiveservices.azure.com,
//     *.services.ai.azure.com and the sovereign clouds). It is then taken
//     for the client provider if that one has an Azure style, else for the
//     provider named "azure".
//  4. Anything else is the client provider's.
type originTable struct {
	bases  []*provider // providers with a base URL, longest base path first
	client *provider
	azure  *provider
}

// newOriginTable compiles the providers' base URLs and refuses those that
// would make the origin of a request ambiguous.
func newOriginTable(ps map[string]*provider, client *provider) (*originTable, error) {
	t := &originTable{client: client, azure: client}
	if client.style != StyleAzure && client.style != StyleAzureV1 {
		if az, ok := ps["azure"]; ok {
			t.azure = az
		}
	}
	for _, p := range ps {
		if p.baseURL != nil {
			t.bases = append(t.bases, p)
		}
	}
	sort.Slice(t.bases, func(i, j int) bool {
		a, b := t.bases[i], t.bases[j]
		if len(a.matchPath) != len(b.matchPath) {
			return len(a.matchPath) > len(b.matchPath)
		}
		if a.matchHost != b.matchHost {
			return a.matchHost < b.matchHost
		}
		if a.matchPath != b.matchPath {
			return a.matchPath < b.matchPath
		}
		return a.name < b.name
	})
	for i, a := range t.bases {
		for _, b := range t.bases[i+1:] {
			if a.matchHost != b.matchHost || a.matchPath != b.matchPath || a.style != b.style {
				continue
			}
			if a == client || b == client || sameBaseHasClient(a, client) {
				continue
			}
			return nil, fmt.Errorf("gwtransport: providers %q and %q have the same base URL %s and URL style %q, so a request to it could belong to either; "+
				"give them different base URLs, or name one of them with WithClientProvider", a.name, b.name, a.matchHost+a.matchPath, a.style)
		}
	}
	return t, nil
}

// sameBaseHasClient reports whether the client provider has a's base URL
// and style too (it then wins every tie at that base).
func sameBaseHasClient(a, client *provider) bool {
	return client.baseURL != nil && client.matchHost == a.matchHost && client.matchPath == a.matchPath && client.style == a.style
}

// normalizeSchemeHost returns scheme and host in lower case, the host
// without the scheme's default port and without the trailing dot of a
// fully qualified name ("localhost." is "localhost"): the form base URLs
// are compared in.
func normalizeSchemeHost(scheme, host string) (string, string) {
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	name, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		name, port = host[:i], host[i:]
	}
	if strings.HasSuffix(name, ".") {
		host = strings.TrimRight(name, ".") + port
	}
	switch {
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = host[:len(host)-3]
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = host[:len(host)-4]
	}
	return scheme, host
}

// parse splits the request URL into base and operation and resolves its
// origin (see [originTable]). Error messages name the path, never the
// query.
func (t *originTable) parse(u *url.URL, h http.Header) (origin, error) {
	o := origin{url: u}
	if hasDotSegment(u.Path) {
		// A server may resolve "/a/v1/../../b/v1" to another provider's
		// base: such a path matches none, and is not routed at all.
		return o, fmt.Errorf("gwtransport: cannot route %s: the path has a . or .. segment", u.Path)
	}
	path := strings.TrimRight(u.Path, "/")
	if i := strings.Index(path, azureDeployments); i >= 0 {
		// The deployment is everything between the prefix and a known
		// operation: go-openai puts the request's model there as is, so a
		// target "b/gpt-4o" makes a deployment of two segments.
		rest := path[i+len(azureDeployments):]
		for _, op := range operations {
			if len(rest) > len(op)+1 && strings.HasSuffix(rest, "/"+op) {
				o.op = op
				break
			}
		}
		if o.op == "" {
			return o, fmt.Errorf("gwtransport: cannot route %s: no operation that takes a model after the deployment", u.Path)
		}
		o.basePath = path[:i]
		o.deployment = true
	} else {
		for _, op := range operations {
			if strings.HasSuffix(path, "/"+op) {
				o.op = op
				o.basePath = path[:len(path)-len(op)-1]
				break
			}
		}
		if o.op == "" {
			return o, fmt.Errorf("gwtransport: cannot route %s: not an operation that takes a model", u.Path)
		}
	}
	p, err := t.match(&o, h)
	o.provider = p
	return o, err
}

// match resolves the origin of a parsed request.
func (t *originTable) match(o *origin, h http.Header) (*provider, error) {
	u := o.url
	scheme, host := normalizeSchemeHost(u.Scheme, u.Host)
	var tied [4]*provider
	ties := tied[:0]
	for _, p := range t.bases {
		if len(ties) > 0 && (p.matchHost != ties[0].matchHost || p.matchPath != ties[0].matchPath) {
			break // sorted: the longest match and its ties are behind us
		}
		if p.host != host || p.scheme != scheme {
			continue
		}
		bp := p.matchPath
		if o.basePath == bp || (strings.HasPrefix(o.basePath, bp) && (bp == "" || o.basePath[len(bp)] == '/')) {
			ties = append(ties, p)
		}
	}
	o.matched = len(ties) > 0
	switch len(ties) {
	case 0:
		if o.deployment || azureShaped(u, o.basePath, h) {
			return t.azure, nil
		}
		return t.client, nil
	case 1:
		return ties[0], nil
	}
	style := shapeStyle(o, ties[0].matchPath)
	var fit *provider
	for _, p := range ties {
		if p.style != style {
			continue
		}
		if p == t.client || fit == nil {
			fit = p
		}
	}
	if fit != nil {
		return fit, nil
	}
	for _, p := range ties {
		if p == t.client {
			return p, nil
		}
	}
	names := make([]string, len(ties))
	for i, p := range ties {
		names[i] = p.name
	}
	return nil, fmt.Errorf("gwtransport: cannot route %s: providers %s share its base URL and none has URL style %q", u.Path, strings.Join(names, ", "), style)
}

// shapeStyle is the URL style a request's path has after the base path bp.
func shapeStyle(o *origin, bp string) URLStyle {
	rest := o.basePath[len(bp):]
	switch {
	case o.deployment:
		return StyleAzure
	case rest == "/openai/v1":
		return StyleAzureV1
	case rest == "/openai" && hasAPIVersion(o.url):
		return StyleAzure
	}
	return StyleOpenAI
}

// azureShaped reports whether a URL that matches no provider's base URL is
// an Azure OpenAI client's (see [originTable]; deployment paths are
// checked by the caller).
func azureShaped(u *url.URL, basePath string, h http.Header) bool {
	if isAzureHost(u.Hostname()) {
		return true
	}
	v1 := strings.HasSuffix(basePath, "/openai/v1")
	if (v1 || strings.HasSuffix(basePath, "/openai")) && hasAPIVersion(u) {
		return true
	}
	return v1 && hasHeader(h, "Api-Key")
}

// hasHeader reports whether h has a value for name (canonical), under any
// spelling of the name.
func hasHeader(h http.Header, name string) bool {
	if len(h[name]) > 0 {
		return true
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// hasAPIVersion reports whether the query has Azure's api-version
// parameter, without parsing the query.
func hasAPIVersion(u *url.URL) bool {
	q := u.RawQuery
	return strings.HasPrefix(q, "api-version=") || strings.Contains(q, "&api-version=")
}

// azureHostSuffixes are the host names of Azure OpenAI resources, public
// and sovereign clouds.
var azureHostSuffixes = []string{
	".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com",
	".openai.azure.us", ".cognitiveservices.azure.us",
	".openai.azure.cn", ".cognitiveservices.azure.cn",
}

func isAzureHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, s := range azureHostSuffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

// targetURL builds the URL of an attempt at model on provider p.
func targetURL(o *origin, p *provider, model string) (*url.URL, error) {
	if p == o.provider {
		// The caller's own client serves this provider: keep its base URL
		// and query (Azure's api-version, say).
		if !o.deployment && len(o.url.Path) == len(o.basePath)+1+len(o.op) {
			// The path stays as the caller wrote it: share the URL,
			// read-only.
			return o.url, nil
		}
		u := *o.url
		u.RawPath = ""
		if o.deployment {
			u.Path = o.basePath + azureDeployments + model + "/" + o.op
		} else {
			u.Path = o.basePath + "/" + o.op
		}
		return &u, nil
	}
	if p.baseURL == nil {
		// Like a missing key: the target is skipped unsent, and the
		// error says what to set.
		hint := ""
		if p.baseEnv != "" {
			hint = " (set " + p.baseEnv + ")"
		}
		return nil, fmt.Errorf("%w: provider %q has no base URL%s", ErrMissingCredentials, p.name, hint)
	}
	u := *p.baseURL
	u.RawPath = ""
	base := strings.TrimRight(u.Path, "/")
	switch p.style {
	case StyleAzure:
		if azureDeploymentOps[o.op] {
			u.Path = base + azureDeployments + model + "/" + o.op
		} else {
			// As openai-go's azure package: the Responses API and the
			// other operations without a deployment path take the
			// deployment in the body's "model".
			u.Path = base + "/openai/" + o.op
		}
		u.RawQuery = "api-version=" + url.QueryEscape(p.apiVersion)
	case StyleAzureV1:
		u.Path = base + "/openai/v1/" + o.op
	default:
		u.Path = base + "/" + o.op
	}
	return &u, nil
}

// hasDotSegment reports whether a (decoded) path has a "." or ".." segment.
func hasDotSegment(path string) bool {
	for path != "" {
		var seg string
		seg, path, _ = strings.Cut(path, "/")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// badEnvName returns the field of p that names an environment variable
// with something that cannot be one (a key pasted in by mistake, say), or
// "". The value is never echoed: it may be a secret.
func badEnvName(p Provider) string {
	for _, f := range []struct{ field, name string }{
		{"base_url_env", p.BaseURLEnv}, {"api_key_env", p.APIKeyEnv}, {"api_version_env", p.APIVersionEnv},
	} {
		if f.name != "" && !validEnvName(f.name) {
			return f.field
		}
	}
	for i, n := range p.APIKeysEnv {
		if !validEnvName(n) {
			return fmt.Sprintf("api_keys_env[%d]", i)
		}
	}
	for h, n := range p.HeadersEnv {
		if !validEnvName(n) {
			return "headers_env[" + strconv.Quote(http.CanonicalHeaderKey(h)) + "]"
		}
	}
	return ""
}

// validEnvName reports whether s can name an environment variable:
// letters, digits and underscores, not starting with a digit.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
