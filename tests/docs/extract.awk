# Split a Markdown page into its ```c blocks (tests/docs/run-docs.sh).
# For block N it writes, into the directory `out`:
#   block-NN.c     the code, as written
#   block-NN.line  the page's line number of the block's first line
#   block-NN.ctx   declarations from a "<!-- doc-test ... -->" comment that
#                  precedes the block (only blank lines may come between)
#   block-NN.hiredis  present for a block opened with ```c hiredis: a
#                  program written for hiredis (docs/guide/from-hiredis.md)
BEGIN { n = 0; inblock = 0; inmarker = 0; have = 0; ctx = ""; fence = 0 }
# fence: the backticks that opened a block of another language, until the
# same run closes it (so an example of a C block inside one is not taken).
inblock {
    if ($0 ~ /^```[ \t]*$/) { inblock = 0; close(file); next }
    print > file
    next
}
fence { if ($0 == fence || $0 ~ ("^" fence "[ \t]*$")) fence = 0; next }
inmarker {
    line = $0
    if (line ~ /-->/) { sub(/-->.*/, "", line); inmarker = 0; have = 1 }
    ctx = ctx line "\n"
    next
}
/^<!-- doc-test/ {
    line = $0
    sub(/^<!-- doc-test:?/, "", line)
    ctx = ""
    if (line ~ /-->/) { sub(/-->.*/, "", line); have = 1 } else inmarker = 1
    ctx = line "\n"
    next
}
/^```c([ \t]+hiredis)?[ \t]*$/ {
    n++
    base = sprintf("%s/block-%02d", out, n)
    file = base ".c"
    printf "" > file
    print FNR + 1 > (base ".line"); close(base ".line")
    if (have) { printf "%s", ctx > (base ".ctx"); close(base ".ctx") }
    if ($0 ~ /hiredis/) { printf "" > (base ".hiredis"); close(base ".hiredis") }
    have = 0; ctx = ""; inblock = 1
    next
}
/^```/ { fence = $0; sub(/[^`].*$/, "", fence); have = 0; ctx = ""; next }
/^[ \t]*$/ { next }
{ have = 0; ctx = "" }
