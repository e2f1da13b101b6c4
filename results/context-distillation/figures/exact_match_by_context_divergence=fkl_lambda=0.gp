# exact_match by context (divergence=fkl, lambda=0): learning curves written by gkd plot.
# Regenerate from this directory: gnuplot exact_match_by_context_divergence=fkl_lambda=0.gp
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 960,600 noenhanced font "sans,11"
} else {
    set terminal png size 960,600 noenhanced
}
set output 'exact_match_by_context_divergence=fkl_lambda=0.png'
set title 'exact_match by context (divergence=fkl, lambda=0)'
set xlabel 'step'
set ylabel 'exact_match (line: mean, band: min..max over seeds)'
set key outside right top title 'context'
set grid
set style fill transparent solid 0.2 noborder
plot 'exact_match_by_context_divergence=fkl_lambda=0.dat' index 0 using 1:3:4 with filledcurves lc rgb '#0072B2' notitle, \
     'exact_match_by_context_divergence=fkl_lambda=0.dat' index 0 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#0072B2' title 'none (n=5)', \
     'exact_match_by_context_divergence=fkl_lambda=0.dat' index 1 using 1:3:4 with filledcurves lc rgb '#D55E00' notitle, \
     'exact_match_by_context_divergence=fkl_lambda=0.dat' index 1 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#D55E00' title 'rationale (n=5)'
set terminal svg size 960,600 dynamic noenhanced font "sans,11" background rgb 'white'
set output 'exact_match_by_context_divergence=fkl_lambda=0.svg'
replot
unset output
