"""The segmentation network: :class:`~.segmenter.Segmenter` (softmax maps of photos), the DeepLab module
(:mod:`.deeplab`), importing the published TFLite weights (:mod:`.tflite_import`, :mod:`.weights`), the class
colours and sketch PNGs (:mod:`.palette`) and the class names (:mod:`.classes`). Importing this package imports
neither torch nor PIL; :mod:`.segmenter` does."""
