// Package jsonscan reads JSON text without decoding it whole: it finds
// where strings, values, members and objects end, tells a string that is
// its own text from one that must be decoded, and holds the strict rules
// this module puts on JSON beyond encoding/json's (no invalid UTF-8, lone
// surrogate, control character or member named twice), with the hex
// digits of \u escapes, which percent escapes are read with too.
//
// The token verifier, the DPoP proof checker and the profile domain all
// read JSON on their hot paths; they read it with these functions, so that
// one text is cut, and one escape judged, the same way everywhere. Every
// function here agrees with encoding/json where both answer, which the
// package's fuzz targets check; anything they cannot answer cheaply is
// left to encoding/json.
//
// It uses the standard library only.
package jsonscan
