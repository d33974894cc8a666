package pgwire

import (
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Greeting is what a client hears once it is logged in: AuthenticationOk,
// the server's parameters, its cancel key and ReadyForQuery.
type Greeting struct {
	Params   map[string]string // the server's ParameterStatus values
	Key      CancelKey         // what the client should send to cancel
	TxStatus byte
	// Negotiate, when the client asked for a newer minor version or for
	// protocol options, tells it the minor version it gets and the options
	// not supported.
	Negotiate *pgproto3.NegotiateProtocolVersion
}

// Negotiation returns the NegotiateProtocolVersion answer a startup needs,
// or nil: clients are spoken to in protocol 3.0.
func Negotiation(st *Startup) *pgproto3.NegotiateProtocolVersion {
	if st.Minor == 0 && len(st.ProtocolOptions) == 0 {
		return nil
	}
	return &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: st.ProtocolOptions}
}

// WriteGreeting sends g in one write.
func WriteGreeting(w io.Writer, g *Greeting) error {
	var buf []byte
	var err error
	if g.Negotiate != nil {
		if buf, err = g.Negotiate.Encode(buf); err != nil {
			return err
		}
	}
	if buf, err = (&pgproto3.AuthenticationOk{}).Encode(buf); err != nil {
		return err
	}
	for name, value := range g.Params {
		if buf, err = (&pgproto3.ParameterStatus{Name: name, Value: value}).Encode(buf); err != nil {
			return err
		}
	}
	if buf, err = (&pgproto3.BackendKeyData{ProcessID: g.Key.PID, SecretKey: g.Key.Secret}).Encode(buf); err != nil {
		return err
	}
	if buf, err = (&pgproto3.ReadyForQuery{TxStatus: g.TxStatus}).Encode(buf); err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// WriteNegotiation sends NegotiateProtocolVersion when st needs one; a
// server sends it before any authentication request.
func WriteNegotiation(w io.Writer, st *Startup) error {
	n := Negotiation(st)
	if n == nil {
		return nil
	}
	buf, err := n.Encode(nil)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}
