# exact_match by variant: learning curves written by gkd plot.
# Regenerate from this directory: gnuplot exact_match_by_variant.gp
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 960,600 noenhanced font "sans,11"
} else {
    set terminal png size 960,600 noenhanced
}
set output 'exact_match_by_variant.png'
set title 'exact_match by variant'
set xlabel 'step'
set ylabel 'exact_match (line: mean, band: min..max over seeds)'
set key outside right top title 'variant'
set grid
set style fill transparent solid 0.2 noborder
plot 'exact_match_by_variant.dat' index 0 using 1:3:4 with filledcurves lc rgb '#0072B2' notitle, \
     'exact_match_by_variant.dat' index 0 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#0072B2' title 'supervised_kd (n=10)', \
     'exact_match_by_variant.dat' index 1 using 1:3:4 with filledcurves lc rgb '#D55E00' notitle, \
     'exact_match_by_variant.dat' index 1 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#D55E00' title 'seqkd (n=10)', \
     'exact_match_by_variant.dat' index 2 using 1:3:4 with filledcurves lc rgb '#009E73' notitle, \
     'exact_match_by_variant.dat' index 2 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#009E73' title 'gkd_half (n=10)', \
     'exact_match_by_variant.dat' index 3 using 1:3:4 with filledcurves lc rgb '#CC79A7' notitle, \
     'exact_match_by_variant.dat' index 3 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#CC79A7' title 'gkd (n=10)'
set terminal svg size 960,600 dynamic noenhanced font "sans,11" background rgb 'white'
set output 'exact_match_by_variant.svg'
replot
unset output
