# exact_match by variant (train_fraction=0.1): learning curves written by gkd plot.
# Regenerate from this directory: gnuplot exact_match_by_variant_train_fraction=0.1.gp
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 960,600 noenhanced font "sans,11"
} else {
    set terminal png size 960,600 noenhanced
}
set output 'exact_match_by_variant_train_fraction=0.1.png'
set title 'exact_match by variant (train_fraction=0.1)'
set xlabel 'step'
set ylabel 'exact_match (line: mean, band: min..max over seeds)'
set key outside right top title 'variant'
set grid
set style fill transparent solid 0.2 noborder
plot 'exact_match_by_variant_train_fraction=0.1.dat' index 0 using 1:3:4 with filledcurves lc rgb '#0072B2' notitle, \
     'exact_match_by_variant_train_fraction=0.1.dat' index 0 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#0072B2' title 'sft (n=5)', \
     'exact_match_by_variant_train_fraction=0.1.dat' index 1 using 1:3:4 with filledcurves lc rgb '#D55E00' notitle, \
     'exact_match_by_variant_train_fraction=0.1.dat' index 1 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#D55E00' title 'kd (n=5)', \
     'exact_match_by_variant_train_fraction=0.1.dat' index 2 using 1:3:4 with filledcurves lc rgb '#009E73' notitle, \
     'exact_match_by_variant_train_fraction=0.1.dat' index 2 using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '#009E73' title 'step_by_step (n=5)'
set terminal svg size 960,600 dynamic noenhanced font "sans,11" background rgb 'white'
set output 'exact_match_by_variant_train_fraction=0.1.svg'
replot
unset output
