package config

import (
	"context"
	"flag"
	"io"
	"testing"
	"time"
)

func TestCommonNATSFlags(t *testing.T) {
	t.Setenv("COMMITFLOW_RETENTION", "48h")
	t.Setenv("COMMITFLOW_NATS_REPLICAS", "3")
	var c Common
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Register(fs)
	if err := Parse(context.Background(), fs, []string{"--dlq-retention", "2160h"}); err != nil {
		t.Fatal(err)
	}
	if c.Retention != 48*time.Hour || c.Replicas != 3 || c.DLQRetention != 2160*time.Hour {
		t.Errorf("retention %v, replicas %d, dlq retention %v", c.Retention, c.Replicas, c.DLQRetention)
	}
}

func TestCheckNATS(t *testing.T) {
	ok := Common{Replicas: 1, Retention: time.Hour}
	tests := []struct {
		name string
		edit func(*Common)
		ok   bool
	}{
		{"defaults", func(*Common) {}, true},
		{"cluster with 3 replicas", func(c *Common) { c.NATS, c.Replicas = "nats://n1:4222", 3 }, true},
		{"embedded with 3 replicas", func(c *Common) { c.Replicas = 3 }, false},
		{"no replicas", func(c *Common) { c.Replicas = 0 }, false},
		{"6 replicas", func(c *Common) { c.NATS, c.Replicas = "nats://n1:4222", 6 }, false},
		{"no retention", func(c *Common) { c.Retention = 0 }, false},
		{"dead letters kept", func(c *Common) { c.DLQRetention = 0 }, true},
		{"negative dead-letter retention", func(c *Common) { c.DLQRetention = -time.Hour }, false},
	}
	for _, tt := range tests {
		c := ok
		tt.edit(&c)
		if err := c.CheckNATS(); (err == nil) != tt.ok {
			t.Errorf("%s: CheckNATS() = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}
