module github.com/gwtransport/gwtransport/gwotel

go 1.23

replace github.com/gwtransport/gwtransport => ..
