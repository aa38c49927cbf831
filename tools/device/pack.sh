# Everything a job leaves under results/ (logs, run directories; not the Inductor cache) as one
# tar under $OUT: the device tool brings back a few files per call, so pack them into one.
mkdir -p "$OUT"
tar czf "$OUT/res.tgz" --exclude=results/inductor results 2>/dev/null
ls -la "$OUT"
