module github.com/gwtransport/gwtransport/benchmarks/peers

go 1.23

replace github.com/gwtransport/gwtransport => ../..

require (
	github.com/failsafe-go/failsafe-go v0.9.8
	github.com/gwtransport/gwtransport v0.0.0-00010101000000-000000000000
	github.com/hashicorp/go-retryablehttp v0.7.8
)

require (
	github.com/Azure/azure-sdk-for-go/sdk/azcore v1.17.0 // indirect
	github.com/Azure/azure-sdk-for-go/sdk/internal v1.10.0 // indirect
	github.com/bits-and-blooms/bitset v1.24.4 // indirect
	github.com/cenkalti/backoff/v4 v4.3.0 // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	github.com/influxdata/tdigest v0.0.1 // indirect
	github.com/openai/openai-go/v3 v3.8.1 // indirect
	github.com/tidwall/gjson v1.14.4 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.1 // indirect
	github.com/tidwall/sjson v1.2.5 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
