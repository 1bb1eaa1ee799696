// Package metrics is kiln-metrics, the metrics daemon baked into every kiln image.
//
// It gathers host metrics from /proc and /sys, drop-in Prometheus text files, exec probes and
// scrapes of local endpoints (package collect), serves them at /metrics in the Prometheus
// text format, reduces the app's request counters to the JSON document at /v1/summary for
// people and tools on the instance (package summary), and publishes chosen series to CloudWatch
// with a bounded buffer (package cloudwatch). SIGHUP reloads the configuration; SIGTERM
// flushes the publisher within a deadline and exits.
package metrics
