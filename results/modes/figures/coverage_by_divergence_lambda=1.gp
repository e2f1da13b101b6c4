# coverage by divergence (lambda=1): learning curves written by gkd plot.
# Regenerate from this directory: gnuplot coverage_by_divergence_lambda=1.gp
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 960,600 noenhanced font "sans,11"
} else {
    set terminal png size 960,600 noenhanced
}
set output 'coverage_by_divergence_lambda=1.png'
set title 'coverage by divergence (lambda=1)'
set xlabel 'step'
set ylabel 'coverage (line: mean, band: min..max over seeds)'
set key outside right top title 'divergence'
set grid
set style fill transparent solid 0.2 noborder
plot 'coverage_by_divergence_lambda=1.dat' index 0 using 1:3:4 with filledcurves lc rgb '#0072B2' notitle, \
     'coverage_by_divergence_lambda=1.dat' index 0 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#0072B2' title 'fkl (n=10)', \
     'coverage_by_divergence_lambda=1.dat' index 1 using 1:3:4 with filledcurves lc rgb '#D55E00' notitle, \
     'coverage_by_divergence_lambda=1.dat' index 1 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#D55E00' title 'rkl (n=10)', \
     'coverage_by_divergence_lambda=1.dat' index 2 using 1:3:4 with filledcurves lc rgb '#009E73' notitle, \
     'coverage_by_divergence_lambda=1.dat' index 2 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#009E73' title 'jsd(0.1) (n=10)', \
     'coverage_by_divergence_lambda=1.dat' index 3 using 1:3:4 with filledcurves lc rgb '#CC79A7' notitle, \
     'coverage_by_divergence_lambda=1.dat' index 3 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#CC79A7' title 'jsd(0.9) (n=10)'
set terminal svg size 960,600 dynamic noenhanced font "sans,11" background rgb 'white'
set output 'coverage_by_divergence_lambda=1.svg'
replot
unset output
