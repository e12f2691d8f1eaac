package gwtransport

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
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
	// (aiflows' wait time per key); 0 means none.
	KeyInterval Duration `json:"key_interval,omitempty"`
	// Headers are extra headers sent to this provider only. Their names are
	// treated as this provider's credentials: they are removed from requests
	// sent to any other provider.
	Headers map[string]string `json:"-"`
	// HeadersEnv are extra headers whose values are read from environment
	// variables: header name -> variable name.
	HeadersEnv map[string]string `json:"headers_env,omitempty"`
}

// defaultAzureAPIVersion is used when neither APIVersion nor its
// environment variable is set.
const defaultAzureAPIVersion = "2024-10-21"

// BuiltinProviders returns the providers known without configuration, keyed
// by name. Keys and, where noted, endpoints come from the conventional
// environment variables.
func BuiltinProviders() map[string]Provider {
	bearer := func(name, base, env string) Provider {
		return Provider{Name: name, BaseURL: base, APIKeyEnv: env, Auth: AuthBearer, Style: StyleOpenAI}
	}
	ps := []Provider{
		bearer("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
		{Name: "azure", BaseURLEnv: "AZURE_OPENAI_ENDPOINT", APIKeyEnv: "AZURE_OPENAI_API_KEY", Auth: AuthAPIKey, Style: StyleAzure, APIVersionEnv: "OPENAI_API_VERSION"},
		bearer("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
		bearer("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
		bearer("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
		bearer("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
		bearer("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
		bearer("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
		bearer("gemini", "https://generativelanguage.googleapis.com/v1beta/openai", "GEMINI_API_KEY"),
		{Name: "ollama", BaseURL: "http://localhost:11434/v1", Auth: AuthNone, Style: StyleOpenAI},
		bearer("vllm", "http://localhost:8000/v1", "VLLM_API_KEY"),
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
	auth       AuthScheme
	style      URLStyle
	apiVersion string
	headers    http.Header
	pool       *keyPool // nil when the provider has no key
}

func resolveProvider(p Provider, env func(string) (string, bool)) (*provider, error) {
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
		auth:       p.Auth,
		style:      p.Style,
		apiVersion: get(p.APIVersion, p.APIVersionEnv),
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
		return nil, fmt.Errorf("gwtransport: provider %q: unknown auth scheme %q", p.Name, p.Auth)
	}
	switch r.style {
	case StyleOpenAI, StyleAzureV1:
	case StyleAzure:
		if r.apiVersion == "" {
			r.apiVersion = defaultAzureAPIVersion
		}
	default:
		return nil, fmt.Errorf("gwtransport: provider %q: unknown URL style %q", p.Name, p.Style)
	}
	if r.base != "" {
		u, err := url.Parse(r.base)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("gwtransport: provider %q: base URL must be absolute, like https://host/v1", p.Name)
		}
		r.baseURL = u
	}
	if len(p.Headers)+len(p.HeadersEnv) > 0 {
		r.headers = make(http.Header, len(p.Headers)+len(p.HeadersEnv))
		for k, v := range p.Headers {
			r.headers.Set(k, v)
		}
		for k, name := range p.HeadersEnv {
			if v, ok := env(name); ok {
				r.headers.Set(k, v)
			}
		}
	}
	var keys []string
	if r.key != "" {
		keys = append(keys, r.key)
	}
	keys = append(keys, p.APIKeys...)
	for _, name := range p.APIKeysEnv {
		if v, ok := env(name); ok && v != "" {
			keys = append(keys, v)
		}
	}
	if p.KeyInterval < 0 {
		return nil, fmt.Errorf("gwtransport: provider %q: key interval must not be negative", p.Name)
	}
	r.pool = newKeyPool(keys, time.Duration(p.KeyInterval))
	return r, nil
}

// credentialHeaders are the request headers that carry a provider's
// credentials or identity. Requests to a provider other than the one the
// caller addressed never carry them; a provider's own Headers are added to
// the set at configuration time.
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
}

// azureDeployments is the path segment of Azure's classic URLs.
const azureDeployments = "/openai/deployments/"

// parseOrigin splits the request URL into base and operation and decides
// which provider the caller's client serves: the configured provider whose
// base URL prefixes the URL, Azure for a deployment path, else fallback
// (OpenAI unless configured otherwise).
func parseOrigin(u *url.URL, ps map[string]*provider, fallback *provider) (origin, error) {
	o := origin{url: u}
	path := strings.TrimRight(u.Path, "/")
	if i := strings.Index(path, azureDeployments); i >= 0 {
		rest := path[i+len(azureDeployments):]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return o, fmt.Errorf("gwtransport: cannot route %s: no operation after the deployment", u.Path)
		}
		o.basePath = path[:i]
		o.op = rest[j+1:]
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
	for _, p := range ps {
		if p.baseURL == nil || p.baseURL.Host != u.Host || p.baseURL.Scheme != u.Scheme {
			continue
		}
		bp := strings.TrimRight(p.baseURL.Path, "/")
		if o.basePath == bp || strings.HasPrefix(o.basePath, bp+"/") {
			o.provider = p
			return o, nil
		}
	}
	if o.deployment {
		if p, ok := ps["azure"]; ok {
			o.provider = p
			return o, nil
		}
	}
	o.provider = fallback
	return o, nil
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
		return nil, fmt.Errorf("gwtransport: provider %q has no base URL", p.name)
	}
	u := *p.baseURL
	u.RawPath = ""
	base := strings.TrimRight(u.Path, "/")
	switch p.style {
	case StyleAzure:
		u.Path = base + azureDeployments + model + "/" + o.op
		u.RawQuery = "api-version=" + url.QueryEscape(p.apiVersion)
	case StyleAzureV1:
		u.Path = base + "/openai/v1/" + o.op
	default:
		u.Path = base + "/" + o.op
	}
	return &u, nil
}
