package authtoken

import (
	"context"
	"testing"
)

// BenchmarkToken measures the per-connection cost of a token with cached
// credentials (a SigV4 presign).
func BenchmarkToken(b *testing.B) {
	b.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE123456789")
	b.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	b.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	src, err := New(context.Background(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := src.Token(ctx, "mydb.abc.us-east-1.rds.amazonaws.com", 5432, "us-east-1", "app_user"); err != nil {
			b.Fatal(err)
		}
	}
}
