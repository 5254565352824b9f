# Drawn by heed (viz/viz.cpp). Edit and redraw in this folder with: gnuplot gan_fd_seed1.gp
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo size 800,500 noenhanced font 'sans,10'
} else {
  set terminal png size 800,500 noenhanced
}
set output 'gan_fd_seed1.png'
set datafile separator ','
set datafile columnheaders
set title 'gan, seed 1: FD-FMNIST of 10000 samples against minutes of training (1 thread, AMD EPYC Zen 5)'
set xlabel 'train_minutes'
set ylabel 'fd_fmnist'
set grid
set offsets graph 0.02, graph 0.02, graph 0.05, graph 0.05
plot 'gan_fd_seed1.csv' using 1:2 with linespoints pt 7 ps 0.6 lw 2 lc rgb '#1f77b4' title 'dcgan', \
     'gan_fd_seed1.csv' using 1:3 with linespoints pt 7 ps 0.6 lw 2 lc rgb '#ff7f0e' title 'dcgan with attention', \
     'gan_fd_seed1.csv' using 1:4 with linespoints pt 7 ps 0.6 lw 2 lc rgb '#2ca02c' title 'sagan without attention', \
     'gan_fd_seed1.csv' using 1:5 with linespoints pt 7 ps 0.6 lw 2 lc rgb '#d62728' title 'sagan', \
     'gan_fd_seed1.csv' using 1:6 with linespoints pt 7 ps 0.6 lw 2 lc rgb '#9467bd' title 'dcgan wgan-gp', \
     'gan_fd_seed1.csv' using 1:7 with linespoints pt 7 ps 0.6 lw 2 lc rgb '#8c564b' title 'PyTorch dcgan'
