package rdsiam_test

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/rds-iam-proxy/rds-iam-proxy/rdsiam"
)

// A pgx pool whose every connection logs in with a fresh IAM token over
// verify-full TLS: a Go program connects to (emulated) RDS in under ten
// lines.
func Example() {
	ctx := context.Background()
	s, _ := rdsiam.New(ctx, rdsiam.Options{Endpoint: endpoint, DialAddress: dialAddress, CABundle: caFile, User: "app_user"})
	cfg, _ := pgxpool.ParseConfig("dbname=app")
	cfg.BeforeConnect = s.BeforeConnect
	pool, _ := pgxpool.NewWithConfig(ctx, cfg)
	var text string
	err := pool.QueryRow(ctx, "SELECT text FROM greeting").Scan(&text)
	fmt.Println(text, s.Explain(ctx, err))
	// Output: hello from PostgreSQL <nil>
}

// The same with every error checked, and the pool and signer closed.
func ExampleSigner_BeforeConnect() {
	ctx := context.Background()
	s, err := rdsiam.New(ctx, rdsiam.Options{Endpoint: endpoint, DialAddress: dialAddress, CABundle: caFile, User: "app_user"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	cfg, err := pgxpool.ParseConfig("dbname=app pool_max_conns=4")
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg.BeforeConnect = s.BeforeConnect
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	var user, database string
	if err := pool.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&user, &database); err != nil {
		fmt.Println(s.Explain(ctx, err))
		return
	}
	fmt.Println(user, database)
	// Output: app_user app
}

// database/sql with pgx's stdlib: the same hook, per connection.
func ExampleSigner_BeforeConnect_databaseSQL() {
	ctx := context.Background()
	s, err := rdsiam.New(ctx, rdsiam.Options{Endpoint: endpoint, DialAddress: dialAddress, CABundle: caFile, User: "app_user"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	cfg, err := pgxpool.ParseConfig("dbname=app")
	if err != nil {
		fmt.Println(err)
		return
	}
	db := stdlib.OpenDB(*cfg.ConnConfig, stdlib.OptionBeforeConnect(s.BeforeConnect))
	defer db.Close()
	var text string
	if err := db.QueryRowContext(ctx, "SELECT text FROM greeting").Scan(&text); err != nil {
		fmt.Println(s.Explain(ctx, err))
		return
	}
	fmt.Println(text)
	// Output: hello from PostgreSQL
}

// go-sql-driver/mysql: a connector that signs a token per connection and
// sends it with mysql_clear_password inside verify-full TLS.
func ExampleSigner_MySQLConnector() {
	ctx := context.Background()
	s, err := rdsiam.New(ctx, rdsiam.Options{Engine: "mysql", Endpoint: myEndpoint, DialAddress: myDialAddress, CABundle: caFile, User: "app_user"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	cfg := mysql.NewConfig()
	cfg.DBName = "app"
	connector, err := s.MySQLConnector(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	var text string
	if err := db.QueryRowContext(ctx, "SELECT text FROM greeting").Scan(&text); err != nil {
		fmt.Println(s.Explain(ctx, err))
		return
	}
	fmt.Println(text)
	// Output: hello from MariaDB
}

// A user that is not an IAM user: Explain gives the proxy's cause and fix.
func ExampleSigner_Explain() {
	ctx := context.Background()
	s, err := rdsiam.New(ctx, rdsiam.Options{Endpoint: endpoint, DialAddress: dialAddress, CABundle: caFile, User: "plain_user"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	cfg, err := pgxpool.ParseConfig("dbname=app")
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg.BeforeConnect = s.BeforeConnect
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	fmt.Println(s.Explain(ctx, pool.Ping(ctx)))
	// Output: upstream did not accept an IAM token for user "plain_user" (password authentication failed for user "plain_user"): the user is not set up for IAM authentication. Fix: GRANT rds_iam TO plain_user
}
