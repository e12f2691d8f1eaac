module github.com/gwtransport/gwtransport

go 1.22

require (
	github.com/Azure/azure-sdk-for-go/sdk/azcore v1.17.0
	github.com/cenkalti/backoff/v4 v4.3.0
	github.com/openai/openai-go/v3 v3.8.1
	github.com/sashabaranov/go-openai v1.41.2
	github.com/stretchr/testify v1.11.1
	go.uber.org/goleak v1.3.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/Azure/azure-sdk-for-go/sdk/internal v1.10.0 // indirect
	github.com/davecgh/go-spew v1.1.1 // indirect
	github.com/pmezard/go-difflib v1.0.0 // indirect
	github.com/tidwall/gjson v1.14.4 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.1 // indirect
	github.com/tidwall/sjson v1.2.5 // indirect
	golang.org/x/net v0.34.0 // indirect
	golang.org/x/text v0.21.0 // indirect
)
