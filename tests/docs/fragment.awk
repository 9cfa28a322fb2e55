# Turn a fragment (a C block without main) into a translation unit body
# (tests/docs/run-docs.sh): top-level items that start with `static`,
# `typedef`, `struct`, `enum`, `union` or `#` stay at file scope, the rest
# goes into the body of a function, in order; a line holding only "..."
# becomes a comment. Every line keeps its place in the page through #line.
# Variables: page (path for #line), first (the block's first line).
function strip(s) {
    gsub(/\\./, "", s)                  # escapes
    gsub(/"[^"]*"/, "\"\"", s)          # string literals
    gsub(/'[^']*'/, "''", s)            # character literals
    gsub(/\/\*[^*]*\*+([^\/*][^*]*\*+)*\//, "", s) # one-line comments
    sub(/\/\/.*/, "", s)
    return s
}
function count(s, ch,   t) { t = s; return gsub(ch, "", t) }
BEGIN { depth = 0; item = ""; nf = 0; nb = 0 }
{
    line = $0
    if (line ~ /^[ \t]*\.\.\.[ \t]*$/) line = "    /* ... */"
    code = strip(line)
    if (depth == 0 && item == "") {
        if (code ~ /^[ \t]*$/) item = "blank"
        else if (code ~ /^(static|typedef|struct|enum|union|#)/) item = "file"
        else item = "body"
    }
    tagged = "#line " (first + NR - 1) " \"" page "\"\n" line
    if (item == "file") file_part[++nf] = tagged; else body_part[++nb] = tagged
    depth += count(code, "{") - count(code, "}")
    if (depth == 0 && (item == "blank" || code ~ /^#/ || code ~ /[;}][ \t]*$/))
        item = ""
}
END {
    for (i = 1; i <= nf; i++) print file_part[i]
    print "void docs_fragment(void);"
    print "void docs_fragment(void)"
    print "{"
    for (i = 1; i <= nb; i++) print body_part[i]
    print "}"
}
